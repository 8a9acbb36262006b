#!/usr/bin/env bash
# apt-install.sh <package>…: installs Debian packages without letting them start their services.
# Debian starts a packaged nginx, caddy or redis on install, and nginx and caddy would both want
# port 80 (the second one's start, and so apt-get, would fail). The tests and the benchmark start
# their own servers on free loopback ports: forbid service starts during the install (policy-rc.d,
# honoured by invoke-rc.d and deb-systemd-invoke) unless a policy already exists, and do not start
# at the next boot the nginx or caddy just installed (systemd machines only; one that was already
# there is left as it was).
set -euo pipefail

[ $# -gt 0 ] || exit 0
sudo_cmd=()
if [ "$(id -u)" -ne 0 ]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive

policy=/usr/sbin/policy-rc.d
if [ ! -e "$policy" ]; then
  "${sudo_cmd[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
  trap '"${sudo_cmd[@]}" rm -f "$policy"' EXIT
fi
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "$@"
if [ -d /run/systemd/system ]; then
  for package in "$@"; do
    case "$package" in
      nginx|caddy) "${sudo_cmd[@]}" systemctl disable --now "$package" >/dev/null 2>&1 || true ;;
    esac
  done
fi
