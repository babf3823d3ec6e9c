/*
 * imgbuild's way into an image root: every command a session runs in the image (a build, its
 * verification, `run`, `shell`) starts here, inside the session's mount and PID namespaces.
 *
 *   enter [--privileged] ROOT CWD -- ARGV...
 *
 * It makes new mount, PID, UTS and IPC namespaces, forks (the child is PID 1 of the new PID
 * namespace, the command), and in the child:
 *   - pivot_root into ROOT, the old root detached: there is no host directory above / to climb to
 *     (a chroot leaves one, and the classic escape reaches it);
 *   - a /proc of the new PID namespace, with /proc/sys and /proc/sysrq-trigger read-only;
 *   - unless --privileged: a capability bounding set that keeps what apt, dpkg, pip and compilers
 *     use and drops the rest (mount, mknod, module loading, raw I/O, ptrace, chroot, ...), and
 *     no_new_privs, so nothing it execs gains a privilege back;
 *   - then chdir(CWD) and execvp(ARGV) with the environment it was given.
 * The parent waits and ends as the child did (its exit code, or the same signal). If the parent
 * dies, the kernel kills the child (PR_SET_PDEATHSIG), and with PID 1 the whole namespace.
 * Exit codes of its own: 125 (could not set the box up, said on stderr), 126/127 (exec failed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static void fail(const char *what, const char *arg) {
  fprintf(stderr, "imgbuild-enter: %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
  _exit(125);
}

/* What stays in the bounding set: file ownership and modes, users and groups (apt's _apt
 * sandbox, dpkg, chown in install scripts), signals, low ports, raw sockets, file capabilities
 * (setcap in a postinst), priorities and resource limits, leases, audit writes. */
static const int keep[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID, CAP_KILL,
    CAP_SETGID, CAP_SETUID, CAP_SETPCAP, CAP_NET_BIND_SERVICE, CAP_NET_RAW, CAP_IPC_OWNER,
    CAP_SYS_NICE, CAP_SYS_RESOURCE, CAP_LEASE, CAP_AUDIT_WRITE, CAP_SETFCAP,
};

static int kept(int cap) {
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
    if (keep[i] == cap) return 1;
  return 0;
}

static void drop_capabilities(void) {
  for (int cap = 0; cap < 64; cap++) {
    if (kept(cap)) continue;
    if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 && errno != EINVAL) fail("dropping a capability from the bounding set", NULL);
  }
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct now[2], data[2];
  if (syscall(SYS_capget, &header, now) != 0) fail("capget", NULL);
  memset(data, 0, sizeof data);
  /* Only what this process has: a host may withhold some (a container without sys_resource). */
  for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
    unsigned bit = 1u << (keep[i] % 32);
    if (!(now[keep[i] / 32].permitted & bit)) continue;
    data[keep[i] / 32].effective |= bit;
    data[keep[i] / 32].permitted |= bit;
  }
  /* Inheritable empty: what an exec gets is the bounding set, nothing more. */
  if (syscall(SYS_capset, &header, data) != 0) fail("capset", NULL);
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("no_new_privs", NULL);
}

static void read_only_bind(const char *path) {
  if (access(path, F_OK) != 0) return;
  if (mount(path, path, NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind", path);
  if (mount(NULL, path, NULL, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("read-only remount of", path);
}

static void enter_root(const char *root) {
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("making mounts private", NULL);
  /* pivot_root wants a mount point: a bind of the root onto itself is one, whatever ROOT is. */
  if (mount(root, root, NULL, MS_BIND | MS_REC, NULL) != 0) fail("bind", root);
  if (chdir(root) != 0) fail("chdir", root);
  /* The old root stacks under the new one at "."; detaching "." then takes it away. */
  if (syscall(SYS_pivot_root, ".", ".") != 0) fail("pivot_root into", root);
  if (umount2(".", MNT_DETACH) != 0) fail("detaching the old root", NULL);
  if (chdir("/") != 0) fail("chdir", "/");
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("mounting", "/proc");
  read_only_bind("/proc/sys");
  read_only_bind("/proc/sysrq-trigger");
}

/* `alive` is the read end of a pipe whose write end only the parent holds: EOF there means the
 * parent died before PR_SET_PDEATHSIG was in place (getppid() says 0 in a new PID namespace). */
static int child(int alive, int privileged, const char *root, const char *cwd, char **argv) {
  if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("PR_SET_PDEATHSIG", NULL);
  char c;
  if (read(alive, &c, 1) == 0) _exit(125);
  close(alive);
  enter_root(root);
  if (!privileged) drop_capabilities();
  if (chdir(cwd) != 0) fail("chdir", cwd);
  execvp(argv[0], argv);
  int code = errno == ENOENT ? 127 : 126;
  fprintf(stderr, "imgbuild-enter: %s: %s\n", argv[0], strerror(errno));
  _exit(code);
}

int main(int argc, char **argv) {
  int i = 1, privileged = 0;
  if (i < argc && strcmp(argv[i], "--privileged") == 0) privileged = 1, i++;
  if (argc - i < 4 || strcmp(argv[i + 2], "--") != 0) {
    fprintf(stderr, "usage: enter [--privileged] ROOT CWD -- ARGV...\n");
    return 125;
  }
  const char *root = argv[i], *cwd = argv[i + 1];
  char **command = argv + i + 3;
  if (unshare(CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWUTS | CLONE_NEWIPC) != 0) fail("unshare", NULL);
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) fail("pipe", NULL);
  if (fcntl(alive[0], F_SETFL, O_NONBLOCK) != 0) fail("fcntl", NULL);
  pid_t pid = fork();
  if (pid < 0) fail("fork", NULL);
  if (pid == 0) {
    close(alive[1]);
    return child(alive[0], privileged, root, cwd, command);
  }
  close(alive[0]);
  /* Ctrl-C and a terminal's job-control signals reach the command through the process group;
   * this process dies of anything else, and the kernel kills the command with it. */
  signal(SIGINT, SIG_IGN);
  signal(SIGQUIT, SIG_IGN);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) fail("waitpid", NULL);
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  int sig = WTERMSIG(status);
  struct rlimit none = {0, 0};
  setrlimit(RLIMIT_CORE, &none);
  signal(sig, SIG_DFL);
  signal(SIGINT, SIG_DFL);
  kill(getpid(), sig);
  return 128 + sig;
}
