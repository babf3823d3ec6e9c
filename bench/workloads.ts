// What the benchmark builds: real projects from Debian's source packages (the upstream tarball,
// without Debian's patches), each with the command that builds it and, where it makes sense,
// the same build with the host's cross compiler as a reference.

export interface Workload {
  id: string;
  title: string;
  /** Debian source package the upstream tarball comes from. */
  source: string;
  /** The accel target (<= 1.3x native) applies: most of the time is spent in the compiler. */
  compileHeavy: boolean;
  /** Shell command run in a fresh copy of the tree, natively (host) or in the chroot. */
  build: (jobs: number) => string;
  /** The same build on the host with the cross tools for `t` (gcc/g++ and binutils names), or why not. */
  cross: ((jobs: number, t: CrossTools) => string) | { na: string };
}

export interface CrossTools {
  cc: string;
  cxx: string;
  ar: string;
  ranlib: string;
}

// What imgbuild's build verb runs for a Python project (lib/build/build-wheel.py, its PEP 517 front end);
// measure.ts puts the script where $WHEEL_FRONTEND says, on the host and in the chroot.
// With --accel full, `imgbuild run` names the host Python of the image's version in $IMGBUILD_PYTHON.
const frontendWheel = '"${IMGBUILD_PYTHON:-python3}" "$WHEEL_FRONTEND" dist .';
const noCross = { na: "needs the image's Python headers" };

export const workloads: readonly Workload[] = [
  {
    id: 'lua',
    title: 'Lua 5.4 (C library + interpreter, make)',
    source: 'lua5.4',
    compileHeavy: true,
    build: (j) => `make -j${j} linux`,
    // Lua's makefile sets CC to "gcc -std=gnu99": keep the flag when replacing the compiler.
    cross: (j, t) => `make -j${j} linux CC='${t.cc} -std=gnu99' AR='${t.ar} rcu' RANLIB=${t.ranlib}`,
  },
  {
    id: 'tinyxml2',
    title: 'TinyXML-2 (C++ library + test program, make, -O2)',
    source: 'tinyxml2',
    compileHeavy: true,
    build: (j) => `make -j${j} CXXFLAGS='-O2 -fPIC'`,
    cross: (j, t) => `make -j${j} CXXFLAGS='-O2 -fPIC' CXX=${t.cxx} AR=${t.ar} RANLIB=${t.ranlib}`,
  },
  {
    id: 'markupsafe',
    title: 'MarkupSafe wheel (one C file; mostly setuptools)',
    source: 'markupsafe',
    compileHeavy: false,
    build: () => frontendWheel,
    cross: noCross,
  },
  {
    id: 'brotli',
    title: 'Brotli wheel (C library + C++ binding, setuptools)',
    source: 'brotli',
    compileHeavy: true,
    build: () => frontendWheel,
    cross: noCross,
  },
];

/** The environment every build gets, host or chroot: no index, no caches, no user config. */
export const buildExports: Record<string, string> = {
  LANG: 'C.UTF-8',
  PIP_CONFIG_FILE: '/dev/null',
  PIP_NO_INDEX: '1',
  PIP_NO_CACHE_DIR: '1',
  PIP_DISABLE_PIP_VERSION_CHECK: '1',
  // Every repetition must compile: a cache hit would time ccache, not the compiler.
  CCACHE_DISABLE: '1',
};

export function selectWorkloads(ids: readonly string[] | undefined): Workload[] {
  if (!ids || ids.length === 0) return [...workloads];
  const unknown = ids.filter((id) => !workloads.some((w) => w.id === id));
  if (unknown.length > 0) throw new Error(`unknown workload ${unknown.join(', ')} (known: ${workloads.map((w) => w.id).join(', ')})`);
  return workloads.filter((w) => ids.includes(w.id));
}
