#!/bin/bash
# VM test tier: run a command as root inside a small VM booted with Debian's stock kernel, for
# integration tests that need kernel features this machine's kernel may lack (device-mapper for
# kpartx, MSDOS partition scanning for losetup -P, vfat).
#
#   scripts/vm-test.sh [--timeout SECONDS] [--rebuild] [--] CMD [ARGS...]
#   scripts/vm-test.sh --check         boot and run the self-check (scripts/vm/self-check.sh)
#   scripts/vm-test.sh --build-only    only prepare the cached VM
#
# CMD runs as root, cwd = this repository (shared at the same absolute path, as is
# /var/cache/imgbuild), PATH has the host's node. Its output is streamed to stdout and its exit
# code is ours. Other exit codes:
#   2    usage error
#   3    skipped (qemu missing, VM cannot be built or booted) and VM_TEST_REQUIRED=1;
#        without VM_TEST_REQUIRED=1 a skip prints "vm-test: skipped: REASON" and exits 0
#   124  the VM ran past --timeout (default 3600 s; VM_TEST_TIMEOUT)
#   125  the VM crashed or powered off without reporting an exit code
#   130/143  interrupted (SIGINT/SIGTERM)
# See scripts/vm/README-section.md for the cache layout and the environment variables.
set -uo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
vmdir=$here/vm
repo=$(cd "$here/.." && pwd -P)
imgcache=/var/cache/imgbuild
vmcache=${VM_TEST_CACHE_DIR:-$imgcache/vm}

say() { echo "vm-test: $*" >&2; }
skip() {
  echo "vm-test: skipped: $*"
  [ "${VM_TEST_REQUIRED:-0}" = 1 ] && exit 3
  exit 0
}
usage() {
  sed -n '/^#   scripts/,/^#   scripts.*build-only/p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,3\}//'
}

# ---------------------------------------------------------------------------------------------
mode=run
timeout=${VM_TEST_TIMEOUT:-}
rebuild=0
while [ $# -gt 0 ]; do
  case $1 in
    --timeout) [ $# -ge 2 ] || { usage >&2; exit 2; }; timeout=$2; shift 2 ;;
    --timeout=*) timeout=${1#*=}; shift ;;
    --check) mode=check; shift ;;
    --build-only) mode=build; shift ;;
    --rebuild) rebuild=1; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; break ;;
    -*) say "unknown option $1"; usage >&2; exit 2 ;;
    *) break ;;
  esac
done
if [ "$mode" = run ] && [ $# -eq 0 ]; then usage >&2; exit 2; fi
if [ "$mode" != run ] && [ $# -gt 0 ]; then say "--check and --build-only take no command"; exit 2; fi
[ -n "$timeout" ] || { [ "$mode" = check ] && timeout=600 || timeout=3600; }
case $timeout in '' | *[!0-9]* | 0) say "--timeout needs a positive number of seconds"; exit 2 ;; esac
memory=${VM_TEST_MEMORY:-3072}
cpus=${VM_TEST_CPUS:-$(($(nproc) >= 2 ? 2 : 1))}

[ "$(uname -m)" = x86_64 ] || skip "needs an x86_64 host (this is $(uname -m))"
[ "$(id -u)" = 0 ] || skip "needs root (loop devices, mmdebstrap, 9p passthrough)"

# ---------------------------------------------------------------------------------------------
# Host tools, installed from Debian's archive when missing.
apt_install() { # PKG...
  command -v apt-get > /dev/null || return 1
  local opts=(-y -q --no-install-recommends -o DPkg::Lock::Timeout=300)
  say "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" > /dev/null 2>&1 && return 0
  DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 > /dev/null 2>&1
  DEBIAN_FRONTEND=noninteractive apt-get install "${opts[@]}" "$@" > /dev/null 2>&1
}
need_tools() { # CMD:PKG... -> installs what is missing; returns 1 if something still is
  local pair missing=() pkgs=()
  for pair in "$@"; do
    command -v "${pair%%:*}" > /dev/null || pkgs+=("${pair#*:}")
  done
  [ ${#pkgs[@]} -eq 0 ] || apt_install "${pkgs[@]}"
  for pair in "$@"; do command -v "${pair%%:*}" > /dev/null || missing+=("${pair%%:*}"); done
  [ ${#missing[@]} -eq 0 ] || { echo "${missing[*]}"; return 1; }
}
run_tools=(qemu-system-x86_64:qemu-system-x86 timeout:coreutils flock:util-linux sha256sum:coreutils)
build_tools=(mmdebstrap:mmdebstrap mkfs.ext4:e2fsprogs xz:xz-utils dpkg-deb:dpkg)
if ! m=$(need_tools "${run_tools[@]}"); then skip "missing $m (apt-get install failed)"; fi

# ---------------------------------------------------------------------------------------------
# Cache: $vmcache/<kernel-version>-<key>/{vmlinux,initrd.img,root.img,...}. The key hashes what
# goes into the build (package list, build scripts, host apt sources and suite, host node);
# guest-init.sh and self-check.sh are copied in per run, so editing them needs no rebuild.
cache_key() {
  {
    echo vm-cache-v1
    cat "$vmdir/packages.list" "$vmdir/build.sh" "$vmdir/initramfs-init.sh"
    echo "suite=${VM_TEST_SUITE:-$(. /etc/os-release && echo "${VERSION_CODENAME:-}")}"
    cat /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list /etc/apt/sources.list 2> /dev/null
    echo "sources=${VM_TEST_APT_SOURCES:-}"
    echo "arches=${VM_TEST_QEMU_ARCHES:-} meta=${VM_TEST_KERNEL_META:-} size=${VM_TEST_ROOT_FS_SIZE:-}"
    local node
    if node=$(command -v node); then
      node=$(readlink -f "$node")
      echo "node=$node $("$node" --version) $(stat -c %s "$node")"
    fi
  } | sha256sum | cut -c1-12
}
key=$(cache_key)

find_cache() {
  local d found=
  for d in "$vmcache"/*-"$key"; do
    [ -f "$d/vmlinux" ] && [ -f "$d/initrd.img" ] && [ -f "$d/root.img" ] && found=$d
  done
  [ -n "$found" ] && echo "$found"
}

# Remove a directory we created, never descending into something mounted below it (a killed
# mmdebstrap can leave /proc, /sys, /dev mounted in its tree): unmount those first, or keep it.
mounts_under() { awk -v p="$1/" 'index($2 "/", p) == 1 { print $2 }' /proc/self/mounts | sort -r; }
safe_rm() {
  local d=$1 m
  [ -e "$d" ] || return 0
  for m in $(mounts_under "$d"); do umount "$m" 2> /dev/null || umount -l "$m"; done
  if [ -n "$(mounts_under "$d")" ]; then
    say "not removing $d: something is still mounted below it"
    return 1
  fi
  rm -rf -- "$d"
}

build_vm() {
  local m
  if ! m=$(need_tools "${build_tools[@]}"); then skip "cannot build the VM: missing $m"; fi
  mkdir -p "$vmcache" || skip "cannot create $vmcache"
  exec 8> "$vmcache/.lock"
  if ! flock -n 8; then
    say "waiting for another vm-test build to finish"
    flock -w 1800 8 || skip "timed out waiting for the build lock ($vmcache/.lock)"
  fi
  if [ "$rebuild" = 0 ] && cache=$(find_cache); then exec 8>&-; return 0; fi

  local d
  for d in "$vmcache"/.build-* "$vmcache"/.old-*; do [ -e "$d" ] && safe_rm "$d"; done
  local tmp log=$vmcache/build.log start=$SECONDS
  tmp=$(mktemp -d "$vmcache/.build-XXXXXX") || skip "cannot create a build directory in $vmcache"
  chmod 755 "$tmp"
  # shellcheck disable=SC2064
  trap "safe_rm '$tmp'" EXIT
  say "building the VM (Debian kernel + minbase tree; about a minute; log: $log)"
  if ! bash "$vmdir/build.sh" "$tmp" > "$log" 2>&1; then
    tail -n 25 "$log" | sed 's/^/  | /' >&2
    safe_rm "$tmp"
    trap - EXIT
    skip "building the VM failed (see $log)"
  fi
  cp "$log" "$tmp/build.log"
  local kver dest
  kver=$(cat "$tmp/kernel-version")
  dest=$vmcache/$kver-$key
  if [ -e "$dest" ]; then
    mv -T "$dest" "$vmcache/.old-$key.$$" || skip "cannot replace $dest"
  fi
  mv -T "$tmp" "$dest" || skip "cannot move the build into $dest"
  trap - EXIT
  safe_rm "$vmcache/.old-$key.$$"
  say "VM built in $((SECONDS - start)) s: $dest"
  # keep the three most recently used builds
  local old
  for old in $(ls -dt "$vmcache"/*-*/ 2> /dev/null | tail -n +4); do safe_rm "${old%/}"; done
  exec 8>&-
  cache=$dest
}

cache=
if [ "$rebuild" = 1 ] || ! cache=$(find_cache); then build_vm; fi
touch "$cache"
[ "$mode" = build ] && { say "VM ready: $cache"; exit 0; }
mkdir -p "$imgcache"

# ---------------------------------------------------------------------------------------------
# Accelerator: KVM when it really boots the kernel (nested KVM may hang or fail), else TCG.
# The probe boots the kernel with an init that only prints a marker; its result is cached per
# host kernel, qemu version and CPU model.
qemu_common=(-nodefaults -no-user-config -M pc -display none -vga none -no-reboot)
accel_args() { # ACCEL -> sets the array accel_opts
  case $1 in
    kvm) accel_opts=(-accel kvm -cpu host) ;;
    *) accel_opts=(-accel tcg -cpu max) ;;
  esac
}
qpath() { printf '%s' "${1//,/,,}"; } # a path inside a qemu option list: commas doubled
probe_boot() { # ACCEL SECONDS -> 0 if the VM kernel boots to init
  local out rc
  out=$(mktemp) || return 1
  accel_args "$1"
  timeout -k 5 "$2" qemu-system-x86_64 "${qemu_common[@]}" "${accel_opts[@]}" -m 256 \
    -kernel "$cache/vmlinux" -initrd "$cache/initrd.img" \
    -append "console=ttyS0 panic=-1 quiet vmtest.probe=1" -serial "file:$(qpath "$out")" \
    < /dev/null > /dev/null 2>&1
  grep -q VMTEST-PROBE-OK "$out"
  rc=$?
  [ $rc = 0 ] || tail -n 5 "$out" | sed 's/^/  | /' >&2
  rm -f "$out"
  return $rc
}
choose_accel() {
  case ${VM_TEST_ACCEL:-auto} in kvm | tcg) echo "$VM_TEST_ACCEL"; return 0 ;; esac
  local id file a
  id=$( {
    uname -r
    qemu-system-x86_64 --version | head -n 1
    grep -m 1 '^model name' /proc/cpuinfo
    cat "$cache/kernel-version"
    [ -w /dev/kvm ] && echo kvm
  } | sha256sum | cut -c1-12)
  file=$vmcache/accel-$id
  if [ -f "$file" ] && a=$(cat "$file") && [ -n "$a" ]; then echo "$a"; return 0; fi
  a=
  if [ -w /dev/kvm ]; then
    if probe_boot kvm "${VM_TEST_KVM_PROBE_TIMEOUT:-20}"; then a=kvm; else say "KVM does not boot the VM kernel here; using TCG"; fi
  fi
  if [ -z "$a" ]; then
    probe_boot tcg 120 || return 1
    a=tcg
  fi
  echo "$a" > "$file.$$" && mv "$file.$$" "$file"
  say "accelerator: $a (cached in $file)"
  echo "$a"
}
accel=$(choose_accel) || skip "qemu cannot boot the VM kernel ($cache/vmlinux) with KVM or TCG"

# ---------------------------------------------------------------------------------------------
# One run: a private directory shared as "vmrun" carries the command in and the exit code out.
run=$(mktemp -d "${TMPDIR:-/tmp}/vm-test.XXXXXX") || { say "cannot create a run directory"; exit 125; }
keep_run=${VM_TEST_KEEP:-0}
# shellcheck disable=SC2317 # called by trap
cleanup_run() { [ "$keep_run" = 1 ] || rm -rf -- "$run"; }
trap cleanup_run EXIT

cp "$vmdir/guest-init.sh" "$vmdir/self-check.sh" "$run/"
tty=0 rows=24 cols=80
if [ -t 1 ]; then
  tty=1
  read -r rows cols < <(stty size <&1 2> /dev/null) || true
fi
{
  printf 'VMTEST_REPO=%q\n' "$repo"
  printf 'VMTEST_CACHE=%q\n' "$imgcache"
  printf 'VMTEST_TTY=%q\nVMTEST_ROWS=%q\nVMTEST_COLS=%q\n' "$tty" "${rows:-24}" "${cols:-80}"
  printf 'VMTEST_BINFMT=%q\n' "${VM_TEST_BINFMT:-1}"
} > "$run/config"
# environment passed through: CI and output settings, IMGBUILD_*, and names in VM_TEST_ENV
{
  for name in CI TERM NO_COLOR FORCE_COLOR DEBUG $(compgen -e | grep '^IMGBUILD_') ${VM_TEST_ENV:-}; do
    [[ $name =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || { say "ignoring VM_TEST_ENV entry '$name'"; continue; }
    [ -n "${!name+set}" ] && printf 'export %s=%q\n' "$name" "${!name}"
  done
} > "$run/env"
if [ "$mode" = check ]; then
  set -- bash /mnt/vmrun/self-check.sh
fi
{
  printf 'exec'
  printf ' %q' "$@"
  printf '\n'
} > "$run/cmd.sh"

accel_args "$accel"
qemu_args=("${qemu_common[@]}" "${accel_opts[@]}" -m "$memory" -smp "$cpus"
  -kernel "$cache/vmlinux" -initrd "$cache/initrd.img"
  -append "console=ttyS1 panic=-1 loglevel=7 mitigations=off ${VM_TEST_KERNEL_ARGS:-}"
  # ttyS0: the command's output, streamed to our stdout; ttyS1: kernel console, to a file
  -chardev "stdio,id=out,signal=off" -serial chardev:out
  -chardev "file,id=klog,path=$(qpath "$run/console.log")" -serial chardev:klog
  -drive "file=$(qpath "$cache/root.img"),format=raw,if=none,id=root,snapshot=on,cache=unsafe"
  -device "virtio-blk-pci,drive=root")
for share in "vmrun:$run" "repo:$repo" "imgcache:$imgcache"; do # TAG:PATH, mounted by guest-init.sh
  tag=${share%%:*}
  qemu_args+=(-fsdev "local,id=$tag,path=$(qpath "${share#*:}"),security_model=passthrough,multidevs=remap"
    -device "virtio-9p-pci,fsdev=$tag,mount_tag=$tag")
done

start=$SECONDS
say "running in the VM ($accel, ${cpus} CPU, ${memory} MiB, timeout ${timeout}s): $*"
timeout -k 10 "$timeout" qemu-system-x86_64 "${qemu_args[@]}" < /dev/null &
qpid=$!
interrupted=
# shellcheck disable=SC2317 # called by trap
on_signal() {
  interrupted=$1
  kill -TERM "$qpid" 2> /dev/null
}
trap 'on_signal 130' INT
trap 'on_signal 143' TERM HUP
while :; do
  wait "$qpid"
  qrc=$?
  kill -0 "$qpid" 2> /dev/null || break
done
trap - INT TERM HUP

console_tail() {
  say "last lines of the VM console (kernel log):"
  tail -n "${VM_TEST_LOG_LINES:-40}" "$run/console.log" 2> /dev/null | sed 's/^/  | /' >&2
  keep_run=1
  say "full console log: $run/console.log"
}
if [ -n "$interrupted" ]; then
  say "interrupted"
  rc=$interrupted
elif [ -s "$run/exit-code" ]; then
  rc=$(cat "$run/exit-code")
  case $rc in '' | *[!0-9]*) rc=125 ;; esac
elif [ "$qrc" = 124 ] || [ "$qrc" = 137 ]; then
  say "timed out after ${timeout}s"
  console_tail
  rc=124
else
  say "the VM stopped without an exit code (qemu exit status $qrc): crash, panic or failed boot"
  console_tail
  rc=125
fi
say "exit $rc after $((SECONDS - start)) s"
exit "$rc"
