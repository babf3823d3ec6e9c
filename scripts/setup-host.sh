#!/usr/bin/env bash
# Idempotent host set-up for imgbuild on Debian/Ubuntu: installs with apt only what is missing,
# then the npm dependencies, then builds. Run as root (or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-host: run as root (sudo $0)" >&2
  exit 3
fi

# command -> Debian package
declare -A need=(
  [qemu-aarch64-static]=qemu-user-static
  [losetup]=util-linux
  [partx]=util-linux
  [sfdisk]=fdisk
  [kpartx]=kpartx
  [mkfs.ext4]=e2fsprogs
  [mkfs.vfat]=dosfstools
  [mcopy]=mtools
  [mmdebstrap]=mmdebstrap
  [arch-test]=arch-test
  [git]=git
  [flock]=util-linux
  [nsenter]=util-linux
  [python3]=python3
  [unzip]=unzip
  # Images as they ship (.img.xz, .img.gz, .img.zst, .img.bz2, .zip); zip makes the tests' archives.
  [xz]=xz-utils
  [zstd]=zstd
  [gzip]=gzip
  [bzip2]=bzip2
  [zip]=zip
  [readelf]=binutils
# --accel: the host's native cross compilers for the sample images' gcc (Debian 12: gcc 12), the
# static libc the accel shim is linked with, ccache and distcc.
  [aarch64-linux-gnu-gcc-12]=gcc-12-aarch64-linux-gnu
  [aarch64-linux-gnu-g++-12]=g++-12-aarch64-linux-gnu
  [arm-linux-gnueabihf-gcc-12]=gcc-12-arm-linux-gnueabihf
  [arm-linux-gnueabihf-g++-12]=g++-12-arm-linux-gnueabihf
  # gcc 11 too: the test of --accel-gcc (a host gcc other than the image's)
  [aarch64-linux-gnu-gcc-11]=gcc-11-aarch64-linux-gnu
  [aarch64-linux-gnu-g++-11]=g++-11-aarch64-linux-gnu
  [cc]=gcc
  [ccache]=ccache
  [distcc]=distcc
)
# Files, not commands: path -> Debian package
declare -A needfile=(
  [/usr/lib/x86_64-linux-gnu/libc.a]=libc6-dev
)
missing=()
for f in "${!needfile[@]}"; do [ -e "$f" ] || missing+=("${needfile[$f]}"); done
for cmd in "${!need[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || PATH="$PATH:/usr/sbin:/sbin" command -v "$cmd" >/dev/null 2>&1 || missing+=("${need[$cmd]}")
done
if [ "${#missing[@]}" -gt 0 ]; then
  mapfile -t pkgs < <(printf '%s\n' "${missing[@]}" | sort -u)
  echo "setup-host: installing ${pkgs[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # --no-install-recommends: qemu-user-static would pull binfmt-support, which registers
  # host-wide entries; imgbuild registers its own per session and removes them afterwards.
  apt-get install -y -qq --no-install-recommends "${pkgs[@]}" >/dev/null
else
  echo "setup-host: system packages present"
fi

# Node >= 22.12 (scripts/setup-node.sh: the system's, the distribution's, or the npm registry's).
bash scripts/setup-node.sh
. scripts/node-env.sh

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
npm run --silent build
chmod +x dist/imgbuild.mjs
# Run through sudo from a user's checkout: what was made here belongs to that user.
if [ -n "${SUDO_UID:-}" ] && [ "$(stat -c %u .)" = "$SUDO_UID" ]; then
  chown -R "$SUDO_UID:${SUDO_GID:-$SUDO_UID}" node_modules dist
fi
echo "setup-host: ready (bin/imgbuild, node dist/imgbuild.mjs, or npm link for an imgbuild command)"
