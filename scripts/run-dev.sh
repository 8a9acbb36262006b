#!/usr/bin/env bash
# Starts the stack on embedded defaults: upstream-ai on the mock provider and the
# gateway in front of it (in-memory rate limiter and cache unless REDIS_URL is set).
# Logs are pretty-printed here only; production writes JSON lines.
set -euo pipefail
cd "$(dirname "$0")/.."

export ENVIRONMENT="${ENVIRONMENT:-development}"
UPSTREAM_PORT="${UPSTREAM_PORT:-8001}"
GATEWAY_PORT="${GATEWAY_PORT:-8080}"
pretty=(node_modules/.bin/pino-pretty --colorize --translateTime SYS:HH:MM:ss.l --ignore service,env)

pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT

HOST=127.0.0.1 PORT="$UPSTREAM_PORT" node dist/upstream-ai/src/main.js \
  > >("${pretty[@]}" | sed -u 's/^/[upstream-ai] /') 2>&1 &
pids+=($!)
HOST=127.0.0.1 PORT="$GATEWAY_PORT" AI_UPSTREAM_URL="http://127.0.0.1:$UPSTREAM_PORT" node dist/gateway/src/main.js \
  > >("${pretty[@]}" | sed -u 's/^/[gateway]     /') 2>&1 &
pids+=($!)

for _ in $(seq 1 100); do
  curl -fsS "http://127.0.0.1:$GATEWAY_PORT/health/live" >/dev/null 2>&1 && break
  sleep 0.1
done

token=$(node dist/gateway/src/tools/dev-token.js alice)
cat <<MSG

  The stack is up: gateway http://127.0.0.1:$GATEWAY_PORT -> upstream-ai http://127.0.0.1:$UPSTREAM_PORT (mock provider)

  A development token for user "alice" (another: make token USER=bob):
    TOKEN=$token

  Try:
    curl -s http://127.0.0.1:$GATEWAY_PORT/v1/ai/generate \\
      -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"use_case":"horoscope_daily","input":{"sign":"leo","date":"2026-11-26"}}'

    curl -sN http://127.0.0.1:$GATEWAY_PORT/v1/ai/chat \\
      -H "Authorization: Bearer \$TOKEN" -H 'Content-Type: application/json' \\
      -d '{"messages":[{"role":"user","content":"What does Mercury retrograde mean?"}]}'

  Ctrl-C stops both services.

MSG
wait -n "${pids[@]}" || true
