# syntax=docker/dockerfile:1
# The images of both services, from one build whose context is the repository root
# (one package.json, one lockfile, one tsconfig.json for the whole project):
#   docker build --target gateway     -t ai-edge-gateway/gateway .
#   docker build --target upstream-ai -t ai-edge-gateway/upstream-ai .
# compose/docker-compose.prod.yml builds both. .dockerignore lets only the sources in.
#
# deploy/test/image.test.ts runs these steps on the test machine, as written, in this order:
# every RUN in its stage's WORKDIR with its ENV, every COPY from the context (through
# .dockerignore) or from an earlier stage, then CMD as the USER below, answering HEALTHCHECK.
# Keep to the instructions it knows (ARG FROM WORKDIR ENV COPY RUN USER EXPOSE STOPSIGNAL
# HEALTHCHECK CMD LABEL), to relative paths in RUN, and to exec-form CMD and HEALTHCHECK.

# A current Node.js LTS on Debian bookworm, slim.
ARG NODE_IMAGE=node:22-bookworm-slim

# Compile: every dependency, then the TypeScript build into dist/.
FROM ${NODE_IMAGE} AS builder
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY common ./common
COPY gateway ./gateway
COPY upstream-ai ./upstream-ai
RUN npm run build

# Production dependencies only, in a clean folder (no install scripts: none of them needs one).
FROM ${NODE_IMAGE} AS prod-deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force

# What both runtime images share: production node_modules, no compiler, no sources, not root.
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
WORKDIR /app
COPY --from=prod-deps /app/node_modules ./node_modules
COPY package.json ./
# The image's `node` user, numeric so that runtimes checking runAsNonRoot can verify it.
# Files stay root-owned: the process can read its code, never change it.
USER 1000:1000
# Both services drain in-flight requests on SIGTERM (AI_*_SHUTDOWN_GRACE_SECONDS), then exit 0.
STOPSIGNAL SIGTERM

FROM runtime AS upstream-ai
COPY --from=builder /src/dist/common/src ./dist/common/src
COPY --from=builder /src/dist/upstream-ai/src ./dist/upstream-ai/src
ENV PORT=8001
EXPOSE 8001
# Slim images have no curl: Node's own fetch asks /health/live (the process answers; dependencies aside).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8001)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/upstream-ai/src/main.js"]

FROM runtime AS gateway
COPY --from=builder /src/dist/common/src ./dist/common/src
COPY --from=builder /src/dist/gateway/src ./dist/gateway/src
ENV PORT=8080
# 4 MB semi-spaces instead of V8's 16 MB: some 20 MB less peak RSS under load, no measurable CPU cost
# (docs/benchmarks.md, Profile). bench/stack.ts starts its gateways with this same value.
ENV NODE_OPTIONS=--max-semi-space-size=4
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:'+(process.env.PORT||8080)+'/health/live').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
CMD ["node", "dist/gateway/src/main.js"]
