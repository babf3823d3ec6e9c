#!/bin/bash
# PID 1 of the test VM (after the initramfs's switch_root). scripts/vm-test.sh copies this file into
# the per-run 9p share /mnt/vmrun for every run, so editing it needs no VM rebuild.
#
# /mnt/vmrun holds (written by the host):
#   config      shell assignments: VMTEST_REPO, VMTEST_CACHE, VMTEST_TTY, VMTEST_BINFMT, VMTEST_COLS, VMTEST_ROWS
#   env         exported variables passed through from the host
#   cmd.sh      the command to run (cwd = VMTEST_REPO)
# and receives:
#   exit-code   the command's exit status (absent if the VM died before the command finished)
#
# Console: the kernel console (and this script's own messages) is ttyS1, which the host writes to a
# log file; the command's output goes to ttyS0, which the host streams to its stdout.
set -u
export PATH=/opt/node/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 SHELL=/bin/bash
RUN=/mnt/vmrun
log() { local up; read -r up _ < /proc/uptime 2> /dev/null; echo "guest-init[${up:-?}]: $*"; }

finish() { # finish RC: hand RC to the host and power off
  [ -n "${1:-}" ] && { echo "$1" > "$RUN/exit-code.tmp" && mv "$RUN/exit-code.tmp" "$RUN/exit-code"; }
  sync
  kill -TERM -1 2> /dev/null
  sleep 0.2
  sync
  for m in "${VMTEST_CACHE:-}" "${VMTEST_REPO:-}"; do
    [ -n "$m" ] && mountpoint -q "$m" && { umount "$m" 2> /dev/null || umount -l "$m"; }
  done
  umount "$RUN" 2> /dev/null
  sync
  echo o > /proc/sysrq-trigger
  sleep 10
  exit 1
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm
mount -t devpts -o gid=5,mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t tmpfs -o mode=755,nosuid,nodev tmpfs /run
mkdir -p /run/lock /run/udev
mount -t cgroup2 cgroup2 /sys/fs/cgroup 2> /dev/null
# devtmpfs has none of these links
ln -sf /proc/self/fd /dev/fd
ln -sf /proc/self/fd/0 /dev/stdin
ln -sf /proc/self/fd/1 /dev/stdout
ln -sf /proc/self/fd/2 /dev/stderr
ln -sf /proc/kcore /dev/core
[ -e /dev/ptmx ] || ln -sf pts/ptmx /dev/ptmx
# /tmp stays on the root disk (a throw-away -snapshot copy with ~24 GB of room), not on tmpfs:
# SD-card images are larger than the VM's memory.
chmod 1777 /tmp

# shellcheck source=/dev/null
. "$RUN/config"

log "mounts done"
modprobe -a loop dm-mod vfat nls_cp437 nls_iso8859-1 nls_ascii ext4 overlay binfmt_misc ||
  log "warning: some modules failed to load"
mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2> /dev/null
hostname vmtest
ip link set lo up 2> /dev/null

log "modules loaded"
# udev: without it kpartx -d silently does nothing and partition/dm nodes and links lag behind.
udevd=
for u in /lib/systemd/systemd-udevd /usr/lib/systemd/systemd-udevd; do [ -x "$u" ] && udevd=$u && break; done
if [ -n "$udevd" ]; then
  "$udevd" --daemon 2> /dev/null
  # Coldplug only what image work touches (a full trigger loads kvm, crypto, floppy... modules
  # and costs seconds under TCG); devices created later (loop, dm) get their events anyway.
  udevadm trigger --type=devices --action=add --subsystem-match=block --subsystem-match=misc
  udevadm settle --timeout=60 || log "warning: udevadm settle timed out"
else
  log "warning: no systemd-udevd"
fi
dmsetup mknodes 2> /dev/null
log "udev ready"

# binfmt_misc: register the qemu-user emulators present, as systemd-binfmt does on a normal host
if [ "${VMTEST_BINFMT:-1}" = 1 ] && [ -w /proc/sys/fs/binfmt_misc/register ]; then
  # bash builtins only: every fork costs tens of milliseconds under TCG
  for conf in /usr/lib/binfmt.d/qemu-*.conf; do
    [ -f "$conf" ] || continue
    while IFS= read -r line; do
      case $line in '' | '#'* | ';'*) continue ;; esac
      IFS=: read -r _ name _ _ _ _ interp _ <<< "$line"
      [ -e "$interp" ] && [ ! -e "/proc/sys/fs/binfmt_misc/$name" ] &&
        { echo "$line" > /proc/sys/fs/binfmt_misc/register || log "warning: binfmt $name not registered"; }
      break
    done < "$conf"
  done
fi
log "binfmt done"
# the host's repository and sample-image cache, at the same absolute paths as on the host
mnt9p() { # TAG DIR
  mkdir -p "$2" && mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose "$1" "$2"
}
mnt9p repo "$VMTEST_REPO" || { log "cannot mount the repository at $VMTEST_REPO"; finish ""; }
log "repo mounted"
mnt9p imgcache "$VMTEST_CACHE" || { log "cannot mount $VMTEST_CACHE"; finish ""; }

log "shares mounted"
set -a
# shellcheck source=/dev/null
. "$RUN/env"
set +a
export IMGBUILD_VM=1

# The command's output: ttyS0 as a raw terminal when the host's stdout is one, otherwise a pipe (so
# the command sees what it would see on the host).
stty -F /dev/ttyS0 raw -echo 2> /dev/null
cd "$VMTEST_REPO" || finish ""
log "running the command"
if [ "${VMTEST_TTY:-0}" = 1 ]; then
  stty -F /dev/ttyS0 rows "${VMTEST_ROWS:-24}" cols "${VMTEST_COLS:-80}" 2> /dev/null
  setsid -w /bin/bash "$RUN/cmd.sh" < /dev/null > /dev/ttyS0 2>&1
  rc=$?
else
  setsid -w /bin/bash "$RUN/cmd.sh" < /dev/null 2>&1 | cat > /dev/ttyS0
  rc=${PIPESTATUS[0]}
fi
log "command exited with $rc"
finish "$rc"
