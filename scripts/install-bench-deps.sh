#!/usr/bin/env bash
# Installs the Debian packages the benchmark runs or needs, when they are missing: redis-server and
# nginx (run as real processes), util-linux's taskset (pins the load generator and the servers to
# different CPUs) and fonts-dejavu-core (the chart's text, rendered by resvg).
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v nginx >/dev/null 2>&1 || missing+=(nginx)
command -v taskset >/dev/null 2>&1 || missing+=(util-linux)
[ -e /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ] || missing+=(fonts-dejavu-core)

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "Installing benchmark dependencies: ${missing[*]}"
"$(dirname "$0")/apt-install.sh" "${missing[@]}"
