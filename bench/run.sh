#!/usr/bin/env bash
# The benchmark in one command (as root):
#
#   sudo bash bench/run.sh [--reps N] [--quick] [--arch aarch64|armhf] [--image IMAGE] [--no-setup] ...
#
# Sets the host up (scripts/setup-host.sh, then what the benchmark itself builds with: the host's
# cross compiler for the image's arch, Python build tools, dpkg-dev for apt-get source, ccache,
# distcc), then runs the driver (bench/main.ts), which prints the report and writes it to
# bench/results/latest.md (quick runs: quick.md). `--help` lists the driver's options; --no-setup
# skips scripts/setup-host.sh (npm ci and the build) on a host that is set up and built already.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "bench: run as root (sudo bash $0)" >&2
  exit 3
fi

arch=aarch64
setup=1
args=()
prev=''
for a in "$@"; do
  case "$a" in
    --no-setup) setup=0; continue ;;
    --arch=*) arch=${a#--arch=} ;;
    *) if [ "$prev" = --arch ]; then arch=$a; fi ;;
  esac
  args+=("$a")
  prev=$a
done
case "$arch" in
  aarch64 | arm64) triplet=aarch64-linux-gnu ;;
  armhf | armv7l) triplet=arm-linux-gnueabihf ;;
  *) echo "bench: no cross compiler known for --arch $arch" >&2; exit 2 ;;
esac

if [ "$setup" = 1 ]; then
  bash scripts/setup-host.sh
elif [ ! -f dist/bench/main.js ]; then
  echo "bench: --no-setup, but dist/bench/main.js is missing: build first (npx tsc -p tsconfig.json)" >&2
  exit 3
fi

apt_install() {
  echo "bench: installing $*"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# command -> Debian package
declare -A need=(
  [gcc]=gcc
  [g++]=g++
  [make]=make
  [dpkg-source]=dpkg-dev
  [ccache]=ccache
  [distcc]=distcc
  [distccd]=distcc
)
missing=()
for cmd in "${!need[@]}"; do
  PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
# Host builds use Debian's python3 (not a pyenv or /usr/local one) with its setuptools and wheel.
/usr/bin/python3 -c 'import setuptools, wheel, pip, sysconfig, os, sys; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))' 2>/dev/null ||
  missing+=(python3-dev python3-setuptools python3-wheel python3-pip)
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  apt_install "${pkgs[@]}"
fi
# The cross compiler of the host gcc's version (the reference column, and imgbuild's --accel).
major=$(/usr/bin/gcc -dumpversion | cut -d. -f1)
if ! command -v "$triplet-gcc-$major" >/dev/null 2>&1 || ! command -v "$triplet-g++-$major" >/dev/null 2>&1; then
  apt_install "gcc-$major-$triplet" "g++-$major-$triplet"
fi

# The project runs on Node >= 22.12 (setup-host put one under /opt/imgbuild/node when the system has an older one).
. scripts/node-env.sh
exec node dist/bench/main.js "${args[@]}"
