#!/usr/bin/env bash
# Installs the Debian packages the test suite runs as real processes, when they are missing:
# redis-server (gateway tests), nginx, caddy and docker-compose (deploy/test: the shipped
# nginx.conf, Caddyfile and compose files run by the real programs).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# PostgreSQL binaries (initdb, postgres): the gateway's health tests start a throwaway server (common/testkit/postgres.ts).
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v caddy >/dev/null 2>&1 || missing+=(caddy)
# docker-compose v1 (Python) only validates the compose files (`config`); it needs no Docker engine.
# python3-yaml: deploy/test reads `docker-compose config` output as JSON through Debian's /usr/bin/python3.
command -v docker-compose >/dev/null 2>&1 || missing+=(docker-compose)
/usr/bin/python3 -c 'import yaml' >/dev/null 2>&1 || missing+=(python3-yaml)
# deploy/test drives them the way the docs tell an operator to (curl, wget as the healthchecks, openssl x509).
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v wget >/dev/null 2>&1 || missing+=(wget)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# libfaketime: gateway/test/reliability/clock-skew.test.ts runs one gateway replica with its clock skewed.
command -v faketime >/dev/null 2>&1 || missing+=(faketime)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing test dependencies: ${missing[*]}"
"$(dirname "$0")/apt-install.sh" "${missing[@]}"
