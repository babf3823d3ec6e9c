#!/usr/bin/env bash
# The long tier: the real builds too slow for CI (test/integration/long.ts), as root, on a host
# that scripts/setup-host.sh has set up (the test command does that). Takes about 40 minutes here.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
  echo "long tier: run as root (sudo bash $0)" >&2
  exit 3
fi
. scripts/node-env.sh
npm run --silent build
IMGBUILD_LONG=1 exec npx ava --serial --timeout=90m test/integration/long.ts
