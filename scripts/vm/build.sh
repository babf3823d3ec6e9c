#!/bin/bash
# Build the VM used by scripts/vm-test.sh into OUTDIR (a fresh directory):
#
#   OUTDIR/vmlinux         uncompressed kernel (ELF with a PVH note: qemu -kernel boots it directly)
#   OUTDIR/initrd.img      tiny initramfs: busybox-static + the modules needed to mount the root
#                          disk and the 9p shares + scripts/vm/initramfs-init.sh as /init
#   OUTDIR/root.img        ext4 image of a Debian minbase tree (scripts/vm/packages.list), with the
#                          kernel's modules and a copy of the host's node; used with qemu -snapshot
#   OUTDIR/kernel-version  e.g. 6.1.0-56-amd64
#   OUTDIR/manifest        package versions inside the root tree
#
# Everything comes from the host's apt sources (mmdebstrap pastes the host's sources files into the
# tree and the kernel and busybox-static are fetched with the tree's own apt). The caller
# (scripts/vm-test.sh) runs this under a lock, in a temporary OUTDIR that it renames into place on
# success, so a killed build never leaves a half cache.
#
# Usage: build.sh OUTDIR
#        build.sh --customize ROOTDIR      (mmdebstrap customize hook, called by the line above)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
say() { echo "vm-build: $*" >&2; }
die() { say "error: $*"; exit 1; }

# Which qemu-user emulators to keep (qemu-user-static ships ~30 of them, 380 MB): the
# architectures lib/arch.ts knows.
QEMU_ARCHES=${VM_TEST_QEMU_ARCHES:-"aarch64 arm riscv64 i386 x86_64"}
KERNEL_META=${VM_TEST_KERNEL_META:-linux-image-amd64}
# Size of the (sparse) root file system: /tmp lives on it, so loop images fit.
ROOT_FS_SIZE=${VM_TEST_ROOT_FS_SIZE:-24G}

# ---------------------------------------------------------------------------------------------
# mmdebstrap customize hook: runs with ROOTDIR's /proc, /sys, /dev mounted and apt lists present.
customize() {
  local root=$1 out=${VM_BUILD_OUT:?}
  local dl=/var/tmp/vm-build
  mkdir -p "$root$dl"
  chmod 777 "$root$dl"   # apt-get download drops privileges to _apt

  local kpkg
  kpkg=$(chroot "$root" apt-cache depends "$KERNEL_META" |
    awk '$1 == "Depends:" && $2 ~ /^linux-image-[0-9]/ { print $2; exit }')
  [ -n "$kpkg" ] || die "cannot resolve $KERNEL_META to a kernel package"
  say "kernel package: $kpkg"
  chroot "$root" sh -c "cd $dl && apt-get download -q '$kpkg' busybox-static" >&2

  local kx="$root$dl/kernel" bx="$root$dl/busybox"
  dpkg-deb -x "$root$dl/${kpkg}_"*.deb "$kx"
  dpkg-deb -x "$root$dl/busybox-static_"*.deb "$bx"
  local kver
  kver=$(basename "$(ls -d "$kx"/lib/modules/*/ | head -1)")
  [ -n "$kver" ] || die "no modules in $kpkg"
  cp "$kx/boot/vmlinuz-$kver" "$out/vmlinuz"
  cp "$kx/boot/config-$kver" "$out/config"
  cp "$bx/bin/busybox" "$out/busybox"
  echo "$kver" > "$out/kernel-version"

  # Modules, without the big trees a VM with no hardware never loads (~390 MB -> ~80 MB).
  local m="$kx/lib/modules/$kver/kernel" d
  rm -rf "$m/sound" "$m/net/wireless" "$m/net/mac80211" "$m/net/bluetooth"
  for d in "$m"/drivers/*; do
    case ${d##*/} in block | md | virtio | char | tty | base | nvdimm | dax) ;; *) rm -rf "$d" ;; esac
  done
  rm -rf "$root/usr/lib/modules/$kver"
  mkdir -p "$root/usr/lib/modules"
  mv "$kx/lib/modules/$kver" "$root/usr/lib/modules/$kver"
  chroot "$root" depmod -a "$kver"
  rm -rf "$root$dl"
}

if [ "${1:-}" = --customize ]; then
  customize "$2"
  exit 0
fi

# ---------------------------------------------------------------------------------------------
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
out=$(cd "$out" && pwd -P)
export VM_BUILD_OUT=$out
root=$out/work/root
mkdir -p "$out/work"

# Host apt configuration: suite and sources files (mmdebstrap pastes a MIRROR that is a file).
suite=${VM_TEST_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}
[ -n "$suite" ] || die "cannot tell the host's Debian suite (set VM_TEST_SUITE)"
mirrors=()
if [ -n "${VM_TEST_APT_SOURCES:-}" ]; then
  read -r -a mirrors <<< "$VM_TEST_APT_SOURCES"
else
  for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list; do
    [ -f "$f" ] && grep -qE '^[[:space:]]*(deb|Types:)' "$f" && mirrors+=("$f")
  done
fi
[ ${#mirrors[@]} -gt 0 ] || die "no apt sources found in /etc/apt"

pkgs=$(sed -e 's/#.*//' "$here/packages.list" | tr -s ' \t\n' '\n' | grep -v '^$' | paste -sd, -)

dpkgopts=(
  --dpkgopt='path-exclude=/usr/share/doc/*'
  --dpkgopt='path-include=/usr/share/doc/*/copyright'
  --dpkgopt='path-exclude=/usr/share/man/*'
  --dpkgopt='path-exclude=/usr/share/info/*'
  --dpkgopt='path-exclude=/usr/share/locale/*'
  --dpkgopt='path-exclude=/usr/bin/qemu-*-static'
)
for a in $QEMU_ARCHES; do dpkgopts+=(--dpkgopt="path-include=/usr/bin/qemu-$a-static"); done

say "mmdebstrap $suite (minbase + $(echo "$pkgs" | tr ',' ' '))"
mmdebstrap --mode=root --variant=minbase --architectures=amd64 \
  --include="$pkgs" "${dpkgopts[@]}" \
  --aptopt='Acquire::Retries "3"' \
  --customize-hook="bash '$here/build.sh' --customize \"\$1\"" \
  "$suite" "$root" "${mirrors[@]}" >&2

kver=$(cat "$out/kernel-version")

# --- node: the host's own binary (Debian's packaged node is too old), laid out like the
# official tarball (bin/ + lib/node_modules/) so npm and npx find themselves.
if node_bin=$(command -v node 2>/dev/null); then
  node_bin=$(readlink -f "$node_bin")
  say "node: $node_bin ($("$node_bin" --version))"
  mkdir -p "$root/opt/node/bin" "$root/opt/node/lib/node_modules"
  cp "$node_bin" "$root/opt/node/bin/node"
  mods=$(dirname "$(dirname "$node_bin")")/lib/node_modules
  for p in npm corepack; do
    [ -d "$mods/$p" ] && cp -a "$mods/$p" "$root/opt/node/lib/node_modules/$p"
  done
  # A node installed alone (setup-host's under /opt/imgbuild/node): npm from wherever PATH has it.
  if [ ! -d "$root/opt/node/lib/node_modules/npm" ] && npm_cli=$(readlink -f "$(command -v npm 2>/dev/null)" 2>/dev/null) && [ -f "$npm_cli" ]; then
    cp -a "$(dirname "$(dirname "$npm_cli")")" "$root/opt/node/lib/node_modules/npm"
  fi
  [ -d "$root/opt/node/lib/node_modules/npm" ] && {
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$root/opt/node/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$root/opt/node/bin/npx"
  }
  [ -d "$root/opt/node/lib/node_modules/corepack" ] &&
    ln -s ../lib/node_modules/corepack/dist/corepack.js "$root/opt/node/bin/corepack"
  chroot "$root" /opt/node/bin/node --version > /dev/null || die "the copied node does not run in the VM tree"
else
  say "warning: no node on the host; the VM will have none"
fi

# --- small fixes for a tree that is booted without systemd
echo vmtest > "$root/etc/hostname"
printf '127.0.0.1\tlocalhost vmtest\n::1\tlocalhost ip6-localhost ip6-loopback\n' > "$root/etc/hosts"
: > "$root/etc/fstab"
mkdir -p "$root/mnt/vmrun" "$root/var/cache/imgbuild"
git config --file "$root/etc/gitconfig" --add safe.directory '*' 2>/dev/null ||
  printf '[safe]\n\tdirectory = *\n' >> "$root/etc/gitconfig"
chroot "$root" dpkg-query -W -f '${Package} ${Version}\n' > "$out/manifest"

# --- kernel: vmlinuz is a bzImage whose payload is compressed; qemu boots the ELF vmlinux inside
# it through PVH, which skips the real-mode setup and the decompressor (much faster under TCG).
# Same idea as the kernel's scripts/extract-vmlinux: try each compression magic until the result
# is an ELF file.
extract_vmlinux() {
  local img=$1 dst=$2 magic tool off
  for pair in $'\xfd7zXZ:xz -dc' $'\x1f\x8b\x08:gzip -dc' $'\x28\xb5\x2f\xfd:zstd -dc' \
    $'\x02\x21\x4c\x18:lz4 -dc' 'BZh9:bzip2 -dc'; do
    magic=${pair%%:*} tool=${pair#*:}
    command -v "${tool%% *}" > /dev/null || continue
    for off in $(LC_ALL=C grep -aboF -- "$magic" "$img" 2> /dev/null | cut -d: -f1 | head -5); do
      tail -c +$((off + 1)) "$img" | $tool > "$dst" 2> /dev/null || true
      [ "$(head -c 4 "$dst" | od -An -c | tr -d ' ')" = '177ELF' ] && return 0
    done
  done
  return 1
}
extract_vmlinux "$out/vmlinuz" "$out/vmlinux" || die "cannot extract vmlinux from vmlinuz-$kver"
rm -f "$out/vmlinuz"

# --- initramfs: busybox + the modules to reach the root disk and the 9p shares, loaded in
# dependency order (read from the tree's modules.dep).
ird=$out/work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp "$out/busybox" "$ird/bin/busybox"
rm -f "$out/busybox"
moddir=$root/usr/lib/modules/$kver
declare -A seen=()
order=()
add_module() { # relative path from modules.dep
  local rel=$1 deps i
  [ -n "${seen[$rel]:-}" ] && return
  seen[$rel]=1
  read -r -a deps <<< "$(awk -v m="$rel:" '$1 == m { $1 = ""; print; exit }' "$moddir/modules.dep")"
  for ((i = ${#deps[@]} - 1; i >= 0; i--)); do add_module "${deps[i]}"; done
  order+=("$rel")
}
# crc32c first: ext4 asks the crypto API for it (request_module would need a modprobe).
for name in crc32c_generic crc32c-intel virtio_pci virtio_blk ext4 9pnet_virtio 9p; do
  rel=$(awk -F: -v n="$name" '{ b = $1; sub(/.*\//, "", b); sub(/\.ko(\.[a-z]+)?$/, "", b);
        gsub(/-/, "_", b); m = n; gsub(/-/, "_", m); if (b == m) { print $1; exit } }' "$moddir/modules.dep")
  [ -n "$rel" ] || die "module $name not found in $kver"
  add_module "$rel"
done
: > "$ird/modules/order"
for rel in "${order[@]}"; do
  cp "$moddir/$rel" "$ird/modules/"
  basename "$rel" >> "$ird/modules/order"
done
cp "$here/initramfs-init.sh" "$ird/init"
chmod 755 "$ird/init" "$ird/bin/busybox"
(cd "$ird" && find . | LC_ALL=C sort | "$ird/bin/busybox" cpio -o -H newc 2> /dev/null) > "$out/initrd.img"
say "initramfs: $(tr '\n' ' ' < "$ird/modules/order")"

# --- root file system image (sparse; no journal: every run writes to a throw-away snapshot)
say "mkfs.ext4 -d ($(du -sh "$root" | cut -f1) tree, $ROOT_FS_SIZE file system)"
mkfs.ext4 -q -F -L vmtest-root -O ^has_journal -N 262144 -E lazy_itable_init=0 \
  -d "$root" "$out/root.img" "$ROOT_FS_SIZE"

if grep -q " $out/work" /proc/self/mounts; then die "something is still mounted under $out/work"; fi
rm -rf "$out/work"
say "done: $kver, $(du -sh --apparent-size "$out/root.img" | cut -f1) image ($(du -sh "$out/root.img" | cut -f1) used)"
