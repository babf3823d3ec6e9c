#!/usr/bin/env bash
# Everything, from a fresh machine: set-up, unit tests, root integration tests on real sample
# images (built once per machine and cached), then the VM tier for kernel paths this host lacks.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup-host.sh
. scripts/node-env.sh
echo "== unit tests"
npx ava 'test/unit/**/*.ts'
echo "== sample images (cached under /var/cache/imgbuild/samples)"
node dist/imgbuild.mjs sample --arch aarch64 --table mbr
node dist/imgbuild.mjs sample --arch armhf --table mbr
node dist/imgbuild.mjs sample --arch aarch64 --table gpt
# Two more releases: bullseye (Python 3.9, gcc 10, pip 20.3) and trixie (Python 3.13, gcc 14).
node dist/imgbuild.mjs sample --arch armhf --table mbr --suite bullseye
node dist/imgbuild.mjs sample --arch aarch64 --table mbr --suite trixie
echo "== integration tests (root, real loops, mounts and qemu)"
npx ava --serial --timeout=20m 'test/integration/**/*.ts'
if [ -x scripts/vm-test.sh ]; then
  echo "== VM tier (stock Debian kernel: kpartx, losetup -P, vfat)"
  # VM_TEST_BINFMT=0: no qemu entries pre-registered in the VM, so imgbuild's own binfmt step runs.
  VM_TEST_BINFMT=0 bash scripts/vm-test.sh --timeout 900 -- npx ava --serial --timeout=10m 'test/vm/**/*.ts'
fi
