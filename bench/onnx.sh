#!/usr/bin/env bash
# The onnx benchmark of issue 15 in one command (as root):
#
#   sudo bash bench/onnx.sh [--reps N] [--jobs N] [--image IMAGE] [--no-setup]
#
# Sets the host up (scripts/setup-host.sh, then the host compilers and the aarch64 cross compiler
# of the host gcc's version that --accel cross uses), then runs bench/onnx.ts, which installs the
# native build's Debian packages, prints the report and writes it to bench/results/onnx-DATE.txt.
# --no-setup skips scripts/setup-host.sh (npm ci and the build) on a host set up and built already.
# An --image of another arch needs that arch's cross compiler (imgbuild names the package).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: run as root (sudo bash $0)" >&2
  exit 3
fi

setup=1
args=()
for a in "$@"; do
  if [ "$a" = --no-setup ]; then setup=0; else args+=("$a"); fi
done

if [ "$setup" = 1 ]; then
  bash scripts/setup-host.sh
elif [ ! -f dist/bench/onnx.js ]; then
  echo "bench: --no-setup, but dist/bench/onnx.js is missing: build first (npx tsc -p tsconfig.json)" >&2
  exit 3
fi
# Node >= 22.12 (setup-host's), not an older system node.
. scripts/node-env.sh

apt_install() {
  echo "bench: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

missing=()
for cmd in gcc g++ make; do
  PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd" >/dev/null 2>&1 || missing+=("$cmd")
done
if [ "${#missing[@]}" -gt 0 ]; then apt_install "${missing[@]}"; fi
# The cross compiler of the host gcc's version (what --accel cross runs for an aarch64 image).
major=$(/usr/bin/gcc -dumpversion | cut -d. -f1)
if ! command -v "aarch64-linux-gnu-gcc-$major" >/dev/null 2>&1 || ! command -v "aarch64-linux-gnu-g++-$major" >/dev/null 2>&1; then
  apt_install "gcc-$major-aarch64-linux-gnu" "g++-$major-aarch64-linux-gnu"
fi

exec node dist/bench/onnx.js "${args[@]}"
