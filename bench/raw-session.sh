#!/usr/bin/env bash
# The benchmark's baseline: the mounts of an `imgbuild run IMAGE -- true` session done by hand with
# plain commands, as a PYNQ-style mount script would, so imgbuild's overhead can be measured.
#
#   raw-session.sh IMAGE OFFSET SIZELIMIT FSTYPE BINFMT_LINE
#
# OFFSET/SIZELIMIT: the root partition in bytes; BINFMT_LINE: a binfmt_misc registration line for a
# uniquely named entry, or "-" to rely on the host's own. Runs in a private mount namespace (as
# imgbuild does), so its mounts die with it; the loop device and the binfmt entry are global and are
# undone by the EXIT trap, also on Ctrl-C and SIGTERM. Exits 0 only if `chroot ROOT true` did.
set -euo pipefail

if [ "$#" -ne 5 ]; then
  echo "usage: $0 IMAGE OFFSET SIZELIMIT FSTYPE BINFMT_LINE|-" >&2
  exit 2
fi
if [ "${RAW_SESSION_IN_NS:-}" != 1 ]; then
  RAW_SESSION_IN_NS=1 exec unshare --mount --propagation private -- "$BASH" "$0" "$@"
fi
image=$1 offset=$2 sizelimit=$3 fstype=$4 binfmt_line=$5

dir=$(mktemp -d /run/imgbuild-bench-raw.XXXXXX)
loop=''
loop_released=0
binfmt_dir=/proc/sys/fs/binfmt_misc
binfmt_entry=''
mounts=()

cleanup() {
  local rc=$?
  set +e
  trap '' INT TERM HUP
  # Released first, while it is certainly still ours: detached now if nothing mounts it, else
  # flagged to be detached with its last mount (after that its name may be someone else's).
  if [ -n "$loop" ] && [ "$loop_released" != 1 ]; then losetup -d "$loop" || rc=1; fi
  # Recorded before each action: after a failure or a signal, undo only what really happened.
  for ((i = ${#mounts[@]} - 1; i >= 0; i--)); do
    if [ "$rc" = 0 ] || mountpoint -q "${mounts[i]}"; then umount "${mounts[i]}" || rc=1; fi
  done
  if [ -n "$binfmt_entry" ] && [ -e "$binfmt_dir/$binfmt_entry" ]; then echo -1 >"$binfmt_dir/$binfmt_entry" || rc=1; fi
  if mountpoint -q "$binfmt_dir" && [ "${binfmt_mounted:-}" = 1 ]; then umount "$binfmt_dir" || rc=1; fi
  rmdir "$dir"/lower "$dir"/upper "$dir"/root 2>/dev/null
  rmdir "$dir" 2>/dev/null || rc=1
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

mnt() { # mnt MOUNT-ARGS... TARGET
  mounts+=("${!#}")
  mount "$@"
}

mkdir "$dir"/lower "$dir"/upper "$dir"/root
# A signal while losetup runs could leave a loop attached that we never learn the name of: losetup
# runs with signals ignored (inherited), and a signal that comes then is lost; the cycle is short.
trap '' INT TERM HUP
loop=$(losetup --find --show --read-only --offset "$offset" --sizelimit "$sizelimit" "$image")
trap 'exit 130' INT TERM HUP
ro=ro
case "$fstype" in ext3 | ext4) ro=ro,noload ;; esac
mnt -t "$fstype" -o "$ro,nodev" "$loop" "$dir"/lower
# Like imgbuild: the loop goes away with its last mount.
losetup -d "$loop"
loop_released=1
mnt -t tmpfs -o mode=0700 raw-upper "$dir"/upper
mkdir "$dir"/upper/data "$dir"/upper/work
mnt -t overlay -o "nodev,lowerdir=$dir/lower,upperdir=$dir/upper/data,workdir=$dir/upper/work" raw-root "$dir"/root
root=$dir/root
mnt -t proc proc "$root"/proc
mnt -t sysfs -o ro sysfs "$root"/sys
mnt --bind /dev "$root"/dev
mnt --bind /dev/pts "$root"/dev/pts
mnt -t tmpfs tmpfs "$root"/run
mnt -t tmpfs tmpfs "$root"/tmp
if [ "$binfmt_line" != - ]; then
  if [ ! -e "$binfmt_dir/register" ]; then
    binfmt_mounted=1
    mount -t binfmt_misc binfmt_misc "$binfmt_dir"
  fi
  name=${binfmt_line#:}
  binfmt_entry=${name%%:*}
  echo "$binfmt_line" >"$binfmt_dir/register"
fi
chroot "$root" /bin/true
