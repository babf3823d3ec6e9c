#!/usr/bin/env bash
# The main job on the bundled sample image, from a fresh machine: set up, make the sample image
# (once per machine), inspect it, and build a verified wheel of a C extension for it under qemu.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
. scripts/node-env.sh
img=$(node dist/imgbuild.mjs sample --arch aarch64)
node dist/imgbuild.mjs inspect "$img"
node dist/imgbuild.mjs "$img" --target local:test/fixtures/py/cext-hello --out wheels
echo "demo: wheels and manifest.json in $PWD/wheels"
