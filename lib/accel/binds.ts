// The read-only binds over the image's compiler: the host's loader, libraries and cross gcc, the
// shim over the image's drivers, cc1 and binutils, and where the cross driver finds the image's gcc.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { Accelerated, HostCross } from './decide.js';
import { rootLoader } from './toolchain.js';
import { accelRoot, type AccelTree } from './tree.js';

const hostTools = ['as', 'ld.bfd', 'ld.gold', 'ar', 'ranlib', 'nm', 'strip', 'objcopy', 'objdump', 'readelf'];
const gccExecutables = ['cc1', 'cc1plus', 'collect2', 'lto-wrapper', 'lto1'];

/**
 * The host's loader and libraries (the launcher, ccache or distcc, is the host's), and the cross
 * gcc's directory; for a toolchain tree also the tree's loader and libraries under tc/.
 */
export function bindHostRuntime(tree: AccelTree, host: HostCross): void {
  bindRuntime(tree, '/', '');
  if (host.tree) {
    fs.mkdirSync(tree.inAccel('tc'));
    for (const d of ['lib', 'lib2']) fs.mkdirSync(tree.inAccel(`tc/${d}`));
    bindRuntime(tree, host.root, 'tc/');
  }
  tree.binds.push({ source: host.gccDir, inner: `${accelRoot}/gcc-cross` });
}

// A root's x86-64 loader and library directories at PREFIX{lib,lib2} and PREFIXld.so in the accel directory.
export function bindRuntime(tree: AccelTree, root: string, prefix: string): void {
  const found = rootLoader(root);
  if (!found || found.libs.length === 0) throw new PreconditionError(`${root} has no x86-64 loader and libraries to run its compilers with`);
  const { file: loader, libs } = found;
  tree.binds.push({ source: libs[0]!, inner: `${accelRoot}/${prefix}lib` });
  if (libs[1]) tree.binds.push({ source: libs[1], inner: `${accelRoot}/${prefix}lib2` });
  const at = libs.indexOf(path.dirname(loader));
  if (at < 0) throw new PreconditionError(`the loader ${loader} is outside ${libs.join(' and ')}`);
  fs.symlinkSync(path.join(at === 0 ? 'lib' : 'lib2', path.basename(loader)), tree.inAccel(`${prefix}ld.so`));
  if (loaderHasArgv0(loader)) fs.writeFileSync(tree.inAccel(`${prefix}argv0`), '');
}

/**
 * A tree's programs on the host's loader and libraries, the tree's own libraries after them (lib3,
 * lib4): for a tree whose loader cannot keep argv[0] (--argv0 came with glibc 2.33), which sh's $0
 * and make's $(MAKE) need. The host's glibc is the newer one, so the tree's programs run on it.
 */
export function bindHostFirstRuntime(tree: AccelTree, root: string, prefix: string): void {
  const found = rootLoader(root);
  if (!found || found.libs.length === 0) throw new PreconditionError(`${root} has no x86-64 libraries to run its programs with`);
  for (const [i, lib] of found.libs.slice(0, 2).entries()) tree.binds.push({ source: lib, inner: `${accelRoot}/${prefix}lib${i + 3}` });
  // Links to the host runtime's entries (ld.so is itself a link, into lib/, whose bind is not up yet).
  const present = (p: string) => fs.lstatSync(p, { throwIfNoEntry: false }) !== undefined;
  for (const name of ['ld.so', 'lib', 'lib2', 'argv0']) if (present(tree.inAccel(name))) fs.symlinkSync(`../${name}`, tree.inAccel(`${prefix}${name}`));
}

/** Whether a root's loader keeps argv[0] for the program it runs (ld.so --argv0). */
export function rootLoaderHasArgv0(root: string): boolean {
  const found = rootLoader(root);
  return found !== undefined && loaderHasArgv0(found.file);
}

/** A program of the toolchain (`/usr/bin/NAME` below its root) as a host file to bind, if it is there. */
function toolchainFile(host: HostCross, name: string): string | undefined {
  if (!host.tree) return fs.existsSync(`/usr/bin/${name}`) ? `/usr/bin/${name}` : undefined;
  const r = resolveInRoot(host.root, `/usr/bin/${name}`);
  return r.type === 'file' ? r.host : undefined;
}

/** The shim over the image gcc's executables, drivers and binutils; the host's LTO plugin over the image's. */
export function wrapCompiler(tree: AccelTree, decision: Accelerated): void {
  const { image, host } = decision;
  const imgDir = `/usr/lib/gcc/${image.triple}/${image.dir}`;
  for (const exe of gccExecutables) {
    if (fs.existsSync(path.join(host.gccDir, exe))) tree.over(`${image.execDir}/${exe}`, `${accelRoot}/gcc-cross/${exe}`);
  }
  // The linker plugin is loaded by the (now native) linker: the host's own .so goes over it.
  // Debian 13 keeps it beside cc1 in /usr/libexec, as the executables.
  for (const dir of new Set([imgDir, image.execDir])) {
    const plugin = resolveInRoot(tree.rootHost, `${dir}/liblto_plugin.so`);
    if (plugin.type === 'file' && fs.existsSync(path.join(host.gccDir, 'liblto_plugin.so'))) tree.binds.push({ source: path.join(host.gccDir, 'liblto_plugin.so'), inner: plugin.inner });
  }

  const t = host.triple;
  const it = image.triple;
  const v = image.dir;
  const drivers: [string, string][] = [
    [`${t}-gcc-${host.major}`, 'gcc'],
    [`${t}-g++-${host.major}`, 'g++'],
    [`${t}-cpp-${host.major}`, 'cpp'],
    [`${t}-gcc-ar-${host.major}`, 'gcc-ar'],
    [`${t}-gcc-nm-${host.major}`, 'gcc-nm'],
    [`${t}-gcc-ranlib-${host.major}`, 'gcc-ranlib'],
  ];
  for (const [hostName, role] of drivers) {
    const hostFile = toolchainFile(host, hostName);
    if (!hostFile) continue;
    const program = tree.tool(hostFile, hostName);
    const flags = role === 'gcc' || role === 'g++' ? 'cc' : role === 'cpp' ? 'cpp' : '-';
    const names = [`/usr/bin/${it}-${role}-${image.major}`, `/usr/bin/${it}-${role}-${v}`, `/usr/bin/${role}-${image.major}`, `/usr/bin/${role}-${v}`, `/usr/bin/${it}-${role}`];
    if (!decision.forced) names.push(`/usr/bin/${role}`);
    if (role === 'gcc' && !decision.forced) names.push('/usr/bin/cc');
    if (role === 'g++' && !decision.forced) names.push('/usr/bin/c++');
    for (const n of names) tree.over(n, program, flags);
  }
  for (const name of hostTools) {
    const hostFile = toolchainFile(host, `${t}-${name}`);
    if (!hostFile) continue;
    const program = tree.tool(hostFile, `${t}-${name}`);
    for (const n of [`/usr/bin/${it}-${name}`, `/usr/bin/${name}`]) tree.over(n, program);
  }
}

/** Where the cross driver finds cc1, the crt files and the image's C++ headers: the environment that says so. */
export function imageGccPaths(tree: AccelTree, decision: Accelerated): Record<string, string> {
  const { image, host } = decision;
  const t = host.triple;
  const it = image.triple;
  const v = image.dir;
  const imgDir = `/usr/lib/gcc/${image.triple}/${image.dir}`;
  // The image's own gcc directory, under the host cross gcc's triple and version when those
  // differ from the image's.
  let execPrefix = '/usr/lib/gcc/';
  if (image.triple !== t || image.dir !== host.major) {
    fs.mkdirSync(tree.inAccel(`gcc/${t}/${host.major}`), { recursive: true });
    tree.binds.push({ source: tree.nsRoot(imgDir), inner: `${accelRoot}/gcc/${t}/${host.major}`, recursive: true });
    execPrefix = `${accelRoot}/gcc/`;
    for (const exe of gccExecutables) {
      if (tree.wraps(`${image.execDir}/${exe}`)) tree.map.push(`${accelRoot}/gcc/${t}/${host.major}/${exe}\t${accelRoot}/gcc-cross/${exe}\t-`);
    }
  }
  const env: Record<string, string> = { GCC_EXEC_PREFIX: execPrefix };
  // cc1 and collect2 apart from the crt files (Debian 13's /usr/libexec/gcc): the driver looks
  // for them below GCC_EXEC_PREFIX only, unless told where.
  if (image.execDir !== imgDir) env.COMPILER_PATH = image.execDir;
  // The image's libstdc++ headers, in gcc's order: the generic ones, the target's (multiarch
  // /usr/include/TRIPLE/c++/V on Debian; /usr/include/c++/V/TRIPLE elsewhere), then backward.
  const cxx = [`/usr/include/c++/${v}`, `/usr/include/${it}/c++/${v}`, `/usr/include/c++/${v}/${it}`, `/usr/include/c++/${v}/backward`].filter((d) => resolveInRoot(tree.rootHost, d).type === 'dir');
  if (cxx.length) env.CPLUS_INCLUDE_PATH = cxx.join(':');
  return env;
}

function loaderHasArgv0(loader: string): boolean {
  try {
    return fs.readFileSync(loader).includes('--argv0');
  } catch {
    return false;
  }
}
