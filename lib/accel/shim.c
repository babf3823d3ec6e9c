/*
 * imgbuild accel shim: a static x86-64 program bound read-only over a compiler file in an
 * emulated chroot (cc1, gcc-12, as, ld.bfd, ...). It looks up the path it was started as
 * (/proc/self/exe) in /run/imgbuild-accel/map and runs the host's native cross tool for it
 * through the host's own loader and libraries, which imgbuild binds under /run/imgbuild-accel (or
 * a toolchain tree's tool through the tree's loader and libraries, bound under ROOT/tc).
 * Nothing of the host has to exist at the image's /lib64 or /usr/lib/x86_64-linux-gnu, so
 * images that are not multiarch work too, and the environment the tools need is set here, so
 * build tools that scrub the environment still get it.
 *
 * Map lines: INNER-PATH <TAB> HOST-PROGRAM <TAB> FLAGS   (FLAGS "cc": a compiler driver, which
 * goes through the launcher in /run/imgbuild-accel/launcher (ccache or distcc) when there is one;
 * "cpp": a driver without the launcher; "distcc": the host's distcc, which gets the compiler by
 * the bare name of its host driver). Drivers get the lines of /run/imgbuild-accel/cflags (the
 * image gcc's own target defaults where the host's differ, e.g. -march=armv6 -marm) first, once,
 * before the launcher: ccache hashes them and distcc sends them to its servers.
 * Env lines: KEY=VALUE, set before the tool runs. FLAGS "host": a build tool of the host's (--accel
 * full: sh, make, cmake, ninja), run through the host's runtime even in a toolchain tree's session,
 * with ROOT/uname.so preloaded (ld.so --preload: not inherited) when it is there; "tree": the same
 * for a build tool of a Python tree, through the runtime under ROOT/tt. FLAGS "py": a host-architecture Python
 * (--accel full), run through the runtime under ROOT/py/rt with the lines of ROOT/py/env set too,
 * and started as this path, which its prefix is found from. Built by imgbuild with: cc -static -Os.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ROOT "/run/imgbuild-accel"
#define DIRECT "IMGBUILD_ACCEL_DIRECT"

static char *slurp(const char *file) {
  FILE *f = fopen(file, "r");
  if (!f) return NULL;
  size_t cap = 8192, len = 0;
  char *buf = malloc(cap);
  size_t n;
  while (buf && (n = fread(buf + len, 1, cap - len - 1, f)) > 0) {
    len += n;
    if (len + 1 >= cap) buf = realloc(buf, cap *= 2);
  }
  fclose(f);
  if (buf) buf[len] = 0;
  return buf;
}

static void die(const char *what, const char *arg) {
  fprintf(stderr, "imgbuild accel: %s%s%s\n", what, arg ? ": " : "", arg ? arg : "");
  exit(127);
}

/* The bare name of the host driver mapped for a compiler path (what distccd servers have and
   whitelist in /usr/lib/distcc; ROOT/bin resolves it here), or NULL if it is not a mapped driver. */
static char *remote_name(const char *compiler) {
  char real[PATH_MAX];
  if (!strchr(compiler, '/') || !realpath(compiler, real)) return NULL;
  char *map = slurp(ROOT "/map");
  for (char *line = map ? strtok(map, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    char *host = strchr(line, '\t');
    if (!host) continue;
    *host++ = 0;
    char *flags = strchr(host, '\t');
    if (!flags || strcmp(line, real) != 0) continue;
    *flags++ = 0;
    if (strcmp(flags, "cc") != 0) return NULL;
    char *slash = strrchr(host, '/');
    return slash ? slash + 1 : host;
  }
  return NULL;
}

int main(int argc, char **argv) {
  char self[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n < 0) die("cannot read /proc/self/exe (is /proc mounted?)", strerror(errno));
  self[n] = 0;

  char *map = slurp(ROOT "/map");
  if (!map) die("cannot read " ROOT "/map", strerror(errno));
  char *host = NULL, *flags = "";
  for (char *line = strtok(map, "\n"); line; line = strtok(NULL, "\n")) {
    char *tab = strchr(line, '\t');
    if (!tab) continue;
    *tab = 0;
    if (strcmp(line, self) != 0) continue;
    host = tab + 1;
    char *tab2 = strchr(host, '\t');
    if (tab2) {
      *tab2 = 0;
      flags = tab2 + 1;
    }
    break;
  }
  if (!host) die("no host tool mapped for", self);

  /* A scrubbed environment (env -i) has no PATH: the cross collect2 finds ld through it. */
  if (!getenv("PATH")) setenv("PATH", "/usr/local/bin:/usr/bin:/bin", 1);
  char *env = slurp(ROOT "/env");
  if (env) {
    for (char *line = strtok(env, "\n"); line; line = strtok(NULL, "\n")) {
      char *eq = strchr(line, '=');
      if (!eq) continue;
      *eq = 0;
      setenv(line, eq + 1, 1);
    }
  }

  int py = strcmp(flags, "py") == 0;
  char *pyenv = py ? slurp(ROOT "/py/env") : NULL;
  for (char *line = pyenv ? strtok(pyenv, "\n") : NULL; line; line = strtok(NULL, "\n")) {
    char *eq = strchr(line, '=');
    if (!eq) continue;
    *eq = 0;
    setenv(line, eq + 1, 1);
  }

  /* distcc runs the compiler named by argv[1] here and sends that name to the servers. */
  if (strcmp(flags, "distcc") == 0 && argc > 1) {
    char *name = remote_name(argv[1]);
    if (name) argv[1] = name;
    const char *path = getenv("PATH");
    if (!path || strncmp(path, ROOT "/bin:", strlen(ROOT "/bin:")) != 0) {
      char *p = malloc(strlen(ROOT "/bin:") + strlen(path ? path : "/usr/bin:/bin") + 1);
      if (!p) die("out of memory", NULL);
      strcat(strcpy(p, ROOT "/bin:"), path ? path : "/usr/bin:/bin");
      setenv("PATH", p, 1);
    }
  }

  /* The image gcc's target defaults, for a driver entered from outside (not from the launcher). */
  int driver = strcmp(flags, "cc") == 0 || strcmp(flags, "cpp") == 0;
  char *cflags[32];
  int ncflags = 0;
  if (driver && !getenv(DIRECT)) {
    char *text = slurp(ROOT "/cflags");
    for (char *line = text ? strtok(text, "\n") : NULL; line && ncflags < 32; line = strtok(NULL, "\n"))
      if (*line) cflags[ncflags++] = line;
  }

  /* A compiler driver goes through the launcher (ccache, distcc), which runs this path again
     with IMGBUILD_ACCEL_DIRECT set; then the real driver runs. */
  const char *program = host;
  int through_launcher = 0;
  char *launcher = NULL;
  if (strcmp(flags, "cc") == 0) {
    if (getenv(DIRECT)) {
      unsetenv(DIRECT);
    } else {
      launcher = slurp(ROOT "/launcher");
      if (launcher) launcher[strcspn(launcher, "\n")] = 0;
      if (launcher && *launcher) {
        through_launcher = 1;
        program = launcher;
        setenv(DIRECT, "1", 1);
      }
    }
  }

  char **args = calloc((size_t)argc + 10 + (size_t)ncflags, sizeof *args);
  if (!args) die("out of memory", NULL);
  int i = 0;
  if (through_launcher && strncmp(program, ROOT "/bin/", strlen(ROOT "/bin/")) == 0) {
    /* A launcher that is itself a copy of this shim (distcc without ccache) runs as it is. */
    args[i++] = (char *)program;
    args[i++] = self;
    for (int k = 0; k < ncflags; k++) args[i++] = cflags[k];
    for (int k = 1; k < argc; k++) args[i++] = argv[k];
    execv(program, args);
    die("cannot run", program);
  }
  /* The mapped tool of a toolchain tree runs through the tree's own loader and libraries (ROOT/tc);
     a launcher (the host's ccache, distcc) through the host's. */
  int tree_tool = strcmp(flags, "tree") == 0;
  int tool = tree_tool || strcmp(flags, "host") == 0;
  int tc = !py && !tool && !through_launcher && strcmp(flags, "distcc") != 0 && access(ROOT "/tc/ld.so", F_OK) == 0;
  const char *rt = py ? ROOT "/py/rt" : tree_tool ? ROOT "/tt" : tc ? ROOT "/tc" : ROOT;
  static char loader[PATH_MAX], libs[4 * PATH_MAX], argv0[PATH_MAX];
  snprintf(loader, sizeof loader, "%s/ld.so", rt);
  /* lib3 and lib4: a tree's own libraries after the host's, when its programs run on the host's newer loader. */
  snprintf(libs, sizeof libs, "%s/lib:%s/lib2:%s/lib3:%s/lib4", rt, rt, rt, rt);
  snprintf(argv0, sizeof argv0, "%s/argv0", rt);
  args[i++] = loader;
  args[i++] = "--library-path";
  args[i++] = libs;
  if (tool && access(ROOT "/uname.so", F_OK) == 0) {
    args[i++] = "--preload";
    args[i++] = ROOT "/uname.so";
  }
  if (access(argv0, F_OK) == 0) {
    args[i++] = "--argv0";
    /* Python finds its prefix from the path it was started as: this one, under ROOT/py/bin. */
    args[i++] = py ? self : through_launcher ? (char *)program : argv[0];
  }
  args[i++] = (char *)program;
  if (through_launcher) args[i++] = self;
  for (int k = 0; k < ncflags; k++) args[i++] = cflags[k];
  for (int k = 1; k < argc; k++) args[i++] = argv[k];
  args[i] = NULL;
  execv(args[0], args);
  die("cannot run", loader);
  return 127;
}
