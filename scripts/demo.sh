#!/usr/bin/env bash
# The main job on the bundled sample image, from a fresh machine: set up, make the sample image
# (once per machine), inspect it, and run Python inside it under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
img=$(node dist/bin/imgbuild.js sample --arch aarch64)
node dist/bin/imgbuild.js inspect "$img"
node dist/bin/imgbuild.js run "$img" -- python3 -c 'import platform, sys; print("hello from", platform.machine(), "python", sys.version.split()[0])'
