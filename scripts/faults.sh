#!/usr/bin/env bash
# The leftovers suite on its own, with a longer randomized part: a fault at every step, then
# kill -9 at N random moments of a busy chroot command (default 200; CI runs 30), recover after each.
# Prints the summary table; exits non-zero on any leftover.   usage: sudo bash scripts/faults.sh [N]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
node dist/imgbuild.mjs sample --arch aarch64 >/dev/null
node dist/imgbuild.mjs sample --arch armhf >/dev/null
IMGBUILD_RANDOM_KILLS="${1:-200}" npx ava --serial --timeout=60m test/integration/faults.ts
