/*
 * imgbuild accel uname: preloaded (ld.so --preload, never inherited by child processes) into the
 * host programs the shim runs for the image's build tools (--accel full: cmake, make, sh). uname()
 * answers the board's machine (the IMGBUILD_TARGET_MACHINE the shim sets), as qemu-user answers
 * for an emulated program, so CMAKE_SYSTEM_PROCESSOR and friends are the board's, not the host's.
 * Built by imgbuild with: cc -shared -fPIC -Os.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <unistd.h>

int uname(struct utsname *u) {
  long r = syscall(SYS_uname, u);
  const char *machine = getenv("IMGBUILD_TARGET_MACHINE");
  if (r == 0 && machine && *machine) {
    strncpy(u->machine, machine, sizeof u->machine - 1);
    u->machine[sizeof u->machine - 1] = 0;
  }
  return (int)r;
}
