#!/bin/busybox sh
# /init of the VM's initramfs (scripts/vm/build.sh packs it with busybox-static and a few modules).
# Debian's kernel has virtio, virtio_blk, ext4 and 9p as modules, so they are loaded here; then the
# ext4 root disk (/dev/vda, a -snapshot copy) is mounted, the per-run 9p share "vmrun" is mounted on
# /mnt/vmrun inside it, and we switch_root to the run's guest init (/mnt/vmrun/guest-init.sh).
#
# Kernel command line:
#   vmtest.probe=1   only print VMTEST-PROBE-OK and power off (the accelerator probe)
/bin/busybox mkdir -p /sbin /usr/bin /usr/sbin
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin

fatal() {
  echo "vm-init: FATAL: $*"
  echo o > /proc/sysrq-trigger
  sleep 5
  exit 1 # init exits -> panic -> reboot (panic=-1) -> qemu exits (-no-reboot)
}

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

probe=
for arg in $(cat /proc/cmdline); do
  case $arg in vmtest.probe=1) probe=1 ;; esac
done
if [ -n "$probe" ]; then
  echo VMTEST-PROBE-OK
  echo o > /proc/sysrq-trigger
  sleep 5
  exit 1
fi

for m in $(cat /modules/order); do
  insmod "/modules/$m" 2> /dev/null || case $m in
    crc32c-intel.ko) ;; # needs SSE4.2; crc32c_generic does the job
    *) echo "vm-init: insmod $m failed" ;;
  esac
done

i=0
while [ ! -b /dev/vda ]; do
  i=$((i + 1))
  [ $i -gt 200 ] && fatal "no root disk /dev/vda"
  sleep 0.05
done
mount -t ext4 -o rw,noatime /dev/vda /newroot || fatal "cannot mount /dev/vda"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 vmrun /newroot/mnt/vmrun ||
  fatal "cannot mount the vmrun 9p share"
[ -f /newroot/mnt/vmrun/guest-init.sh ] || fatal "no guest-init.sh in the vmrun share"

umount /proc /sys
umount /dev
# shellcheck disable=SC2093 # fatal below runs only if exec fails
exec switch_root /newroot /bin/bash /mnt/vmrun/guest-init.sh
fatal "switch_root failed"
