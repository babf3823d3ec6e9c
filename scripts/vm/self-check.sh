#!/bin/bash
# Self-check run inside the test VM by `scripts/vm-test.sh --check`: proves that the kernel
# features the host may lack work here (device-mapper + kpartx, MSDOS partition scanning with
# losetup -P, vfat), plus the VM plumbing (shares at the host's paths, node, udev, binfmt_misc).
# Prints PASS/FAIL per item and exits 1 if any item failed.
set -u
pass=0 fail=0
ok() { echo "PASS: $*"; pass=$((pass + 1)); }
bad() { echo "FAIL: $*"; fail=$((fail + 1)); }
# item NAME CMD...: run CMD (in this shell, so it can set variables), PASS/FAIL with its output
# indented on failure
item() {
  local name=$1
  shift
  if "$@" > "$work/out" 2>&1; then ok "$name"; else
    bad "$name"
    tail -n 20 "$work/out" | sed 's/^/      /'
  fi
}
wait_for() { # wait_for TEST-ARGS...: up to 5 s for `test ARGS` to hold
  local i
  for ((i = 0; i < 50; i++)); do test "$@" && return 0; sleep 0.1; done
  return 1
}

work=$(mktemp -d /tmp/vm-self-check.XXXXXX)
img=$work/sd.img
loopdev=
cleanup() {
  mountpoint -q "$work/mnt" && umount "$work/mnt"
  kpartx -d "$img" > /dev/null 2>&1
  [ -n "$loopdev" ] && losetup "$loopdev" > /dev/null 2>&1 && losetup -d "$loopdev"
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/mnt"

echo "== environment"
item "running as root in the VM ($(uname -r))" test "$(id -u)" = 0
item "repository mounted at the host's path ($PWD)" test -f "$PWD/package.json"
item "/var/cache/imgbuild mounted" mountpoint -q /var/cache/imgbuild
item "node >= 20 on PATH ($(node --version 2> /dev/null || echo none))" \
  node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)'
item "/dev/stdin, /dev/stdout, /dev/stderr, /dev/fd" test -e /dev/stdin -a -e /dev/stdout -a -e /dev/stderr -a -d /dev/fd/
item "systemd-udevd running" pgrep -x systemd-udevd
item "binfmt_misc mounted, qemu-aarch64 registered" test -e /proc/sys/fs/binfmt_misc/qemu-aarch64

echo "== device-mapper"
dm_version() {
  modprobe dm-mod || return 1
  dmsetup version | tee /dev/stderr | grep -q '^Driver version:'
}
item "modprobe dm-mod; dmsetup version shows the kernel driver" dm_version
item "/dev/mapper/control exists" test -c /dev/mapper/control

echo "== MBR image, losetup -P"
make_image() {
  truncate -s 96M "$img" &&
    printf 'label: dos\nstart=2048, size=64M, type=c, bootable\ntype=83\n' | sfdisk -q "$img" &&
    sfdisk -l "$img"
}
item "sfdisk: MBR image with p1 FAT32 LBA (type c) + p2 Linux" make_image

attach_p() {
  loopdev=$(losetup -P -f --show "$img") || return 1
  echo "attached $loopdev"
  wait_for -b "${loopdev}p1" && wait_for -b "${loopdev}p2"
}
item "losetup -P: ${loopdev:-/dev/loopX}p1 and p2 appear" attach_p
echo "      (loop device: ${loopdev:-none})"
item "mkfs.vfat p1, mkfs.ext4 p2" sh -c "mkfs.vfat -n BOOT '${loopdev}p1' && mkfs.ext4 -q -F -L rootfs '${loopdev}p2'"
vfat_rw() {
  mount -t vfat "${loopdev}p1" "$work/mnt" || return 1
  echo 'arm_64bit=1' > "$work/mnt/config.txt" && umount "$work/mnt"
}
item "mount -t vfat ${loopdev}p1 (write a file)" vfat_rw
ext4_rw() {
  mount -t ext4 "${loopdev}p2" "$work/mnt" || return 1
  mkdir -p "$work/mnt/etc" && echo vm > "$work/mnt/etc/hostname" && umount "$work/mnt"
}
item "mount -t ext4 ${loopdev}p2" ext4_rw
detach_p() {
  losetup -d "$loopdev" || return 1
  wait_for ! -e "${loopdev}p1" || { echo "${loopdev}p1 still there"; return 1; }
  loopdev=
}
item "losetup -d removes the partition devices" detach_p

echo "== kpartx"
kloop=
kpartx_add() {
  local out
  out=$(kpartx -av "$img") || return 1
  echo "$out"
  kloop=$(echo "$out" | sed -n 's/^add map \(loop[0-9]*\)p1 .*/\1/p')
  [ -n "$kloop" ] || return 1
  udevadm settle
  wait_for -b "/dev/mapper/${kloop}p1" && wait_for -b "/dev/mapper/${kloop}p2"
}
item "kpartx -av: /dev/mapper/loopXp1 and p2 appear" kpartx_add
echo "      (maps: /dev/mapper/${kloop:-none}p1, p2)"
vfat_read() {
  mount -t vfat "/dev/mapper/${kloop}p1" "$work/mnt" || return 1
  grep -q arm_64bit "$work/mnt/config.txt"
  local rc=$?
  umount "$work/mnt"
  return $rc
}
item "mount -t vfat /dev/mapper/${kloop:-loopX}p1 (file from before is there)" vfat_read
kpartx_del() {
  kpartx -dv "$img" || return 1
  udevadm settle
  if dmsetup info "${kloop}p1" > /dev/null 2>&1 || [ -e "/dev/mapper/${kloop}p1" ]; then
    echo "mapping ${kloop}p1 still present after kpartx -d"
    return 1
  fi
  if losetup "/dev/$kloop" > /dev/null 2>&1; then
    echo "/dev/$kloop still attached after kpartx -d"
    return 1
  fi
}
item "kpartx -d removes the mappings and detaches the loop device" kpartx_del
dmsetup_remove() {
  local out l
  out=$(kpartx -av "$img") || return 1
  l=$(echo "$out" | sed -n 's/^add map \(loop[0-9]*\)p1 .*/\1/p')
  loopdev=/dev/$l
  udevadm settle
  dmsetup remove "${l}p1" "${l}p2" || return 1
  udevadm settle
  dmsetup info "${l}p1" > /dev/null 2>&1 && { echo "${l}p1 still present"; return 1; }
  [ -e "/dev/mapper/${l}p1" ] && { echo "/dev/mapper/${l}p1 still present"; return 1; }
  losetup -d "$loopdev" && loopdev=
}
item "dmsetup remove cleans kpartx mappings" dmsetup_remove
item "no device-mapper devices left" sh -c '[ "$(dmsetup ls)" = "No devices found" ]'

echo
echo "self-check: $pass passed, $fail failed"
[ "$fail" = 0 ]
