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
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

# Debian starts the packaged nginx, caddy and redis services on install, and nginx and caddy would
# both want port 80 (the second one's start, and so apt-get, would fail). The tests start their own
# servers on free loopback ports with their own config and prefix: forbid service starts during the
# install (policy-rc.d, honoured by invoke-rc.d and deb-systemd-invoke) unless a policy already exists.
policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${sudo_cmd[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
# Nor start at the next boot the nginx or caddy just installed (systemd machines only; one that was
# already there is left as it was).
if [ -d /run/systemd/system ]; then
  for package in "${missing[@]}"; do
    case "$package" in
      nginx|caddy) "${sudo_cmd[@]}" systemctl disable --now "$package" >/dev/null 2>&1 || true ;;
    esac
  done
fi
