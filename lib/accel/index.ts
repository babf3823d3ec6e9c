// Compiler acceleration: inside the emulated chroot, the compiler driver, cc1/cc1plus, the
// assembler and the linker run as the host's native cross tools for the image's arch, while
// make, sh and python stay emulated. Read-only binds of a small static shim (lib/accel/shim.c)
// go over the image's own compiler files; the shim runs the mapped host tool through the host's
// loader and libraries, bound under /run/imgbuild-accel (the session's own tmpfs). The image's
// headers, crt files, libgcc and libstdc++ are the ones used. All binds go in one mount batch
// and come off in one, before the session's other mounts.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { checkDistccRequest, distccEnv, parseDistccHost, probeDistccHosts } from './distcc.js';
import { PreconditionError } from '../core/errors.js';
import { packageFile } from '../core/resources.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { Session } from '../session/index.js';

export type AccelMode = 'auto' | 'cross' | 'none' | 'distcc';
export const accelModes: readonly AccelMode[] = ['auto', 'cross', 'none', 'distcc'];

export interface AccelRequest {
  mode: AccelMode;
  /** --accel-gcc N: use the host's cross gcc N even when the image's gcc is another version. */
  gcc?: string;
  /** distccd servers (DISTCC_HOSTS syntax per entry). */
  distccHosts?: string[];
  /** Use the host's ccache for the accelerated compiler (default true). */
  ccache?: boolean;
}

/** The image's gcc: where its files are, as paths inside the image. */
export interface ImageGcc {
  triple: string;
  /** The directory name under /usr/lib/gcc/TRIPLE (Debian: "12"; others: "12.2.0"). */
  dir: string;
  major: string;
  /** Drivers and tools that resolve to files of this gcc (resolved paths, no symlinks). */
  hasCxx: boolean;
}

/** The host's Debian cross toolchain for an arch: /usr/bin/TRIPLE-gcc-N, /usr/lib/gcc-cross/TRIPLE/N. */
export interface HostCross {
  triple: string;
  major: string;
  gccDir: string;
  hasCxx: boolean;
}

export type AccelDecision =
  | { kind: 'none'; reason: string }
  | {
      kind: 'cross' | 'distcc';
      image: ImageGcc;
      host: HostCross;
      forced: boolean;
      reason: string;
      distccHosts: string[];
      ccache: boolean;
      /** The image gcc's configured target defaults where the host's differ, given to every driver run. */
      targetFlags: string[];
    };

const hostTools = ['as', 'ld.bfd', 'ld.gold', 'ar', 'ranlib', 'nm', 'strip', 'objcopy', 'objdump', 'readelf'];
const gccExecutables = ['cc1', 'cc1plus', 'collect2', 'lto-wrapper', 'lto1'];
/** Root of everything accel puts in the chroot (inside the session's /run tmpfs). */
export const accelRoot = '/run/imgbuild-accel';

/** Major versions of the host's cross gcc for this arch (Debian packages gcc-N-TRIPLE). */
export function hostCrossVersions(arch: Arch, hostRoot = '/'): string[] {
  const triple = archTable[arch].triplet;
  const dir = path.join(hostRoot, 'usr/lib/gcc-cross', triple);
  let names: string[] = [];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names.filter((v) => fs.existsSync(path.join(dir, v, 'cc1')) && fs.existsSync(path.join(hostRoot, 'usr/bin', `${triple}-gcc-${v}`))).sort((a, b) => Number(b) - Number(a));
}

export function hostCross(arch: Arch, major: string, hostRoot = '/'): HostCross | undefined {
  const triple = archTable[arch].triplet;
  const gccDir = path.join('/usr/lib/gcc-cross', triple, major);
  if (!hostCrossVersions(arch, hostRoot).includes(major)) return undefined;
  const hasCxx = fs.existsSync(path.join(hostRoot, gccDir, 'cc1plus')) && fs.existsSync(path.join(hostRoot, 'usr/bin', `${triple}-g++-${major}`));
  return { triple, major, gccDir, hasCxx };
}

/** The gcc the image's `cc` (or `gcc`) runs, found from its files without running anything. */
export function imageGcc(rootHost: string, arch: Arch): ImageGcc | undefined {
  const base = path.join(rootHost, 'usr/lib/gcc');
  const cpu = archTable[arch].triplet.split('-')[0]!;
  const found: ImageGcc[] = [];
  let triples: string[] = [];
  try {
    triples = fs.readdirSync(base).filter((t) => t.startsWith(cpu === 'arm' ? 'arm' : cpu));
  } catch {
    return undefined;
  }
  for (const triple of triples) {
    for (const dir of safeList(path.join(base, triple))) {
      const cc1 = resolveInRoot(rootHost, `/usr/lib/gcc/${triple}/${dir}/cc1`);
      if (cc1.type !== 'file') continue;
      found.push({ triple, dir, major: dir.split('.')[0]!, hasCxx: resolveInRoot(rootHost, `/usr/lib/gcc/${triple}/${dir}/cc1plus`).type === 'file' });
    }
  }
  if (found.length <= 1) return found[0];
  // Several: the one /usr/bin/cc (or gcc) leads to, by the version in its resolved name.
  for (const name of ['/usr/bin/cc', '/usr/bin/gcc']) {
    const r = resolveInRoot(rootHost, name);
    const m = /-(\d+)(?:\.[\d.]+)?$/.exec(path.posix.basename(r.inner));
    const hit = m && found.find((g) => g.major === m[1]);
    if (hit) return hit;
  }
  return found.sort((a, b) => Number(b.major) - Number(a.major))[0];
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

// ---------------------------------------------------------------------------------------------
// Target defaults: what a gcc was configured to generate when no -march/-mfpu/... is given.

/** The `--with-X=` options that set a gcc's default code generation, with the flag each becomes. */
const targetOptions: Record<string, (v: string) => string> = {
  arch: (v) => `-march=${v}`,
  cpu: (v) => `-mcpu=${v}`,
  fpu: (v) => `-mfpu=${v}`,
  float: (v) => `-mfloat-abi=${v}`,
  mode: (v) => `-m${v}`,
  abi: (v) => `-mabi=${v}`,
  tune: (v) => `-mtune=${v}`,
};

/** The configure command line a gcc driver was built with (what `gcc -v` prints), read from its file. */
export function gccConfigureLine(driver: Buffer): string | undefined {
  const text = driver.toString('latin1');
  for (let at = text.indexOf('/configure '); at >= 0; at = text.indexOf('/configure ', at + 1)) {
    const start = text.lastIndexOf('\0', at) + 1;
    const end = text.indexOf('\0', at);
    const line = text.slice(start, end < 0 ? undefined : end);
    if (/ --target=\S+/.test(line) || / --prefix=\S+/.test(line)) return line;
  }
  return undefined;
}

/** The target defaults in a configure line: { arch: 'armv6', fpu: 'vfp', float: 'hard' }. */
export function targetDefaults(configure: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of configure.matchAll(/(?:^|\s)--with-(arch|cpu|fpu|float|mode|abi|tune)=(\S+)/g)) out[m[1]!] = m[2]!.replace(/^'|'$/g, '');
  return out;
}

/**
 * Flags that make the host cross gcc generate what the image's gcc generates by default: the
 * image's value wherever the two were configured differently. Raspberry Pi OS armhf (armv6, vfp,
 * ARM mode) against Debian's cross gcc (armv7-a+fp, Thumb-2) gives -march=armv6 -mfpu=vfp -marm.
 * A problem when the image leaves a default to gcc's built-in choice that the host overrides.
 */
export function targetFlags(image: Record<string, string>, host: Record<string, string>): { flags: string[] } | { problem: string } {
  const flags: string[] = [];
  for (const [key, flag] of Object.entries(targetOptions)) {
    const mine = image[key];
    const theirs = host[key];
    if (mine === theirs) continue;
    if (mine !== undefined) {
      flags.push(flag(mine));
      continue;
    }
    // The image's gcc uses its built-in default here; the host's was configured to another.
    if (key === 'tune') continue; // speed only
    if (key === 'mode') flags.push('-marm'); // gcc's built-in ARM default
    else if (key === 'fpu') flags.push('-mfpu=auto'); // from the architecture, as gcc does by default
    else if ((key === 'arch' && image.cpu) || (key === 'cpu' && image.arch)) continue; // the image's other one is given
    else return { problem: `the host's cross gcc was configured --with-${key}=${theirs} and the image's gcc without it, so its default ${key} cannot be told` };
  }
  return { flags };
}

/** The image's gcc driver and the host's, as files: their configure lines give the target defaults. */
function driverDefaults(rootHost: string, image: ImageGcc, host: HostCross, hostRoot: string): { flags: string[] } | { problem: string } {
  const imageDriver = [`/usr/bin/${image.triple}-gcc-${image.major}`, `/usr/bin/${image.triple}-gcc-${image.dir}`, `/usr/bin/gcc-${image.major}`, `/usr/bin/gcc-${image.dir}`, '/usr/bin/gcc']
    .map((p) => resolveInRoot(rootHost, p))
    .find((r) => r.type === 'file');
  const hostDriver = `/usr/bin/${host.triple}-gcc-${host.major}`;
  const hostFile = path.join(hostRoot, hostDriver);
  const read = (file: string) => {
    try {
      return fs.statSync(file).size <= 64 * 1024 * 1024 ? gccConfigureLine(fs.readFileSync(file)) : undefined;
    } catch {
      return undefined;
    }
  };
  const mine = imageDriver && read(imageDriver.host);
  if (!mine) return { problem: "cannot read the image gcc driver's configuration (its target defaults: -march, -mfpu, ...)" };
  const theirs = read(hostFile);
  if (!theirs) return { problem: `cannot read the configuration of ${hostDriver}` };
  return targetFlags(targetDefaults(mine), targetDefaults(theirs));
}

/**
 * Whether and how to accelerate, with the reason in words. `auto` falls back to emulation
 * (saying why); `cross` and `distcc` fail instead. --accel-gcc forces a host gcc version.
 */
export function decideAccel(req: AccelRequest, arch: Arch, rootHost: string, hostRoot = '/'): AccelDecision {
  checkDistccRequest(req.mode, req.distccHosts);
  if (req.mode === 'none') return { kind: 'none', reason: 'pure emulation (--accel none)' };
  const explicit = req.mode !== 'auto';
  const fail = (why: string, hint: string): AccelDecision => {
    if (explicit) throw new PreconditionError(`--accel ${req.mode}: ${why}`, hint);
    return { kind: 'none', reason: `emulated compiler: ${why}` };
  };
  if (!needsEmulation(arch)) return { kind: 'none', reason: `the image (${arch}) runs natively: nothing to accelerate` };
  const image = imageGcc(rootHost, arch);
  if (!image) return fail('the image has no gcc (/usr/lib/gcc/*/*/cc1)', 'install gcc in the image, or let the build install it');
  const triple = archTable[arch].triplet;
  const versions = hostCrossVersions(arch, hostRoot);
  const pkgs = (v: string) => `gcc-${v}-${triple} g++-${v}-${triple}`;
  const major = req.gcc ?? image.major;
  const host = hostCross(arch, major, hostRoot);
  if (!host) {
    const have = versions.length ? `the host has ${versions.map((v) => `gcc ${v}`).join(', ')} for ${triple}` : `the host has no ${triple} cross gcc`;
    return fail(
      `no host cross gcc ${major} for ${triple} (the image's gcc is ${image.major}; ${have})`,
      `install it on the host (apt-get install ${pkgs(major)}) if your distribution has it${req.gcc ? '' : '; --accel-gcc N forces another version (the wheel is still verified against the image)'}`,
    );
  }
  if (image.hasCxx && !host.hasCxx) {
    return fail(`the host has gcc-${major}-${triple} but not g++-${major}-${triple}`, `apt-get install g++-${major}-${triple}`);
  }
  const defaults = driverDefaults(rootHost, image, host, hostRoot);
  if ('problem' in defaults) return fail(defaults.problem, 'use --accel none (the image gcc, emulated)');
  const forced = host.major !== image.major;
  const distccHosts = req.distccHosts ?? [];
  const withFlags = defaults.flags.length ? `, with the image gcc's target defaults ${defaults.flags.join(' ')}` : '';
  const reason = forced
    ? `host cross gcc ${host.major} forced over the image's gcc ${image.major} (--accel-gcc)${withFlags}: objects may need a newer libgcc/libstdc++ than the board has; the wheel is verified against the image`
    : `host-native ${triple}-gcc-${host.major} for the image's gcc ${image.dir}${withFlags}${req.mode === 'distcc' ? `, compile jobs sent to distccd on ${distccHosts.join(' ')}` : ''}`;
  return { kind: req.mode === 'distcc' ? 'distcc' : 'cross', image, host, forced, reason, distccHosts, ccache: req.ccache ?? true, targetFlags: defaults.flags };
}

// ---------------------------------------------------------------------------------------------
// The shim

const shimSource = packageFile('lib/accel/shim.c');

/** The static shim, compiled once per source version into the cache (needs the host's cc and libc.a). */
export async function ensureShim(ctx: Context): Promise<string> {
  const src = fs.readFileSync(shimSource);
  const hash = crypto.createHash('sha256').update(src).digest('hex').slice(0, 12);
  const dir = path.join(ctx.cacheDir, 'accel');
  const out = path.join(dir, `shim-${hash}`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await ctx.run('cc', ['-static', '-Os', '-s', '-o', tmp, shimSource], { allowFailure: true });
  if (r.exitCode !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new PreconditionError(`cannot build the accel shim with the host's cc: ${r.all.trim().split('\n').slice(-3).join(' ')}`, 'install gcc and libc6-dev on the host (scripts/setup-host.sh does), or use --accel none');
  }
  fs.renameSync(tmp, out);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Mounting

interface Bind {
  /** Source path as seen in the session namespace. */
  source: string;
  /** Target path inside the chroot. */
  inner: string;
  rw?: boolean;
  recursive?: boolean;
}

export interface AccelHandle {
  decision: AccelDecision;
  /** Environment the build's commands get (the shim sets the same itself). */
  env: Record<string, string>;
  /** The ccache directory on the host, when ccache is used. */
  ccacheDir?: string;
  mounts: number;
  /** Remove every accel bind now (before apt or dpkg runs); also registered as an undo step. */
  disable(): Promise<void>;
}

/**
 * Bind the host's cross tools over the image's compiler in the session's chroot. The binds are
 * read-only (the ccache directory excepted), gone when the session closes or `disable()` runs.
 */
export async function enableAccel(ctx: Context, s: Session, decision: Extract<AccelDecision, { kind: 'cross' | 'distcc' }>, o: { guardDpkg?: boolean } = {}): Promise<AccelHandle> {
  const shim = await ensureShim(ctx);
  const rootHost = s.ns.hostPath(s.root);
  const runHost = s.file('/run');
  const accelHost = path.join(runHost, 'imgbuild-accel');
  if (fs.existsSync(accelHost)) throw new PreconditionError('compiler acceleration is already enabled in this session');
  const { image, host } = decision;
  const inAccel = (p: string) => path.join(accelHost, p);
  const nsRoot = (inner: string) => path.join(s.root, inner);
  fs.mkdirSync(accelHost, { mode: 0o755 });
  for (const d of ['tools', 'lib', 'lib2', 'gcc-cross', 'bin']) fs.mkdirSync(inAccel(d));
  fs.copyFileSync(shim, inAccel('shim'));
  fs.chmodSync(inAccel('shim'), 0o755);

  const binds: Bind[] = [];
  const map: string[] = [];
  const touch = (p: string) => fs.closeSync(fs.openSync(p, 'w', 0o755));
  const shimInNs = nsRoot(`${accelRoot}/shim`);

  // The host's loader and libraries.
  const x86 = hostLibraryDirs();
  binds.push({ source: x86[0]!, inner: `${accelRoot}/lib` });
  if (x86[1]) binds.push({ source: x86[1], inner: `${accelRoot}/lib2` });
  const loader = fs.realpathSync('/lib64/ld-linux-x86-64.so.2');
  fs.symlinkSync(path.join(x86[0] === path.dirname(loader) ? 'lib' : 'lib2', path.basename(loader)), inAccel('ld.so'));
  if (path.dirname(loader) !== x86[0] && path.dirname(loader) !== x86[1]) throw new PreconditionError(`the host's loader ${loader} is outside ${x86.join(' and ')}`);
  if (loaderHasArgv0(loader)) fs.writeFileSync(inAccel('argv0'), '');
  binds.push({ source: host.gccDir, inner: `${accelRoot}/gcc-cross` });

  // Host programs, each at /run/imgbuild-accel/tools/NAME.
  const tool = (hostFile: string, name = path.basename(hostFile)) => {
    const inner = `${accelRoot}/tools/${name}`;
    if (!binds.some((b) => b.inner === inner)) {
      touch(inAccel(`tools/${name}`));
      binds.push({ source: hostFile, inner });
    }
    return inner;
  };
  // Image files the shim goes over: resolved paths, as /proc/self/exe will show them.
  const wrapped = new Set<string>();
  const over = (inner: string, hostProgram: string, flags = '-') => {
    const r = resolveInRoot(rootHost, inner);
    if (r.type !== 'file' || wrapped.has(r.inner)) return;
    wrapped.add(r.inner);
    binds.push({ source: shimInNs, inner: r.inner });
    map.push(`${r.inner}\t${hostProgram}\t${flags}`);
  };

  const imgDir = `/usr/lib/gcc/${image.triple}/${image.dir}`;
  for (const exe of gccExecutables) {
    if (fs.existsSync(path.join(host.gccDir, exe))) over(`${imgDir}/${exe}`, `${accelRoot}/gcc-cross/${exe}`);
  }
  // The linker plugin is loaded by the (now native) linker: the host's own .so goes over it.
  const plugin = resolveInRoot(rootHost, `${imgDir}/liblto_plugin.so`);
  if (plugin.type === 'file' && fs.existsSync(path.join(host.gccDir, 'liblto_plugin.so'))) binds.push({ source: path.join(host.gccDir, 'liblto_plugin.so'), inner: plugin.inner });

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
    const hostFile = `/usr/bin/${hostName}`;
    if (!fs.existsSync(hostFile)) continue;
    const program = tool(hostFile);
    const flags = role === 'gcc' || role === 'g++' ? 'cc' : role === 'cpp' ? 'cpp' : '-';
    const names = [`/usr/bin/${it}-${role}-${image.major}`, `/usr/bin/${it}-${role}-${v}`, `/usr/bin/${role}-${image.major}`, `/usr/bin/${role}-${v}`, `/usr/bin/${it}-${role}`];
    if (!decision.forced) names.push(`/usr/bin/${role}`);
    if (role === 'gcc' && !decision.forced) names.push('/usr/bin/cc');
    if (role === 'g++' && !decision.forced) names.push('/usr/bin/c++');
    for (const n of names) over(n, program, flags);
  }
  for (const name of hostTools) {
    const hostFile = `/usr/bin/${t}-${name}`;
    if (!fs.existsSync(hostFile)) continue;
    const program = tool(hostFile);
    for (const n of [`/usr/bin/${it}-${name}`, `/usr/bin/${name}`]) over(n, program);
  }

  // Where the cross driver finds cc1 and the crt files: the image's own gcc directory, under
  // the host cross gcc's triple and version when those differ from the image's.
  let execPrefix = '/usr/lib/gcc/';
  if (image.triple !== t || image.dir !== host.major) {
    fs.mkdirSync(inAccel(`gcc/${t}/${host.major}`), { recursive: true });
    binds.push({ source: nsRoot(imgDir), inner: `${accelRoot}/gcc/${t}/${host.major}`, recursive: true });
    execPrefix = `${accelRoot}/gcc/`;
    for (const exe of gccExecutables) {
      if (wrapped.has(`${imgDir}/${exe}`)) map.push(`${accelRoot}/gcc/${t}/${host.major}/${exe}\t${accelRoot}/gcc-cross/${exe}\t-`);
    }
  }
  const env: Record<string, string> = { GCC_EXEC_PREFIX: execPrefix };
  // The image's libstdc++ headers, in gcc's order: the generic ones, the target's (multiarch
  // /usr/include/TRIPLE/c++/V on Debian; /usr/include/c++/V/TRIPLE elsewhere), then backward.
  const cxx = [`/usr/include/c++/${v}`, `/usr/include/${it}/c++/${v}`, `/usr/include/c++/${v}/${it}`, `/usr/include/c++/${v}/backward`].filter((d) => resolveInRoot(rootHost, d).type === 'dir');
  if (cxx.length) env.CPLUS_INCLUDE_PATH = cxx.join(':');

  // A launcher for compiler drivers: the host's ccache and/or distcc.
  let ccacheDir: string | undefined;
  let launcher = '';
  const ccacheBin = decision.ccache ? findProgram('ccache') : undefined;
  const distccBin = decision.kind === 'distcc' ? findProgram('distcc') : undefined;
  if (decision.kind === 'distcc' && !distccBin) throw new PreconditionError('--accel distcc: the host has no distcc', 'apt-get install distcc');
  if (ccacheBin) {
    ccacheDir = path.join(ctx.cacheDir, 'ccache', `${s.arch}-gcc${host.major}-on-${image.triple}-${image.dir}`);
    fs.mkdirSync(ccacheDir, { recursive: true });
    fs.mkdirSync(inAccel('ccache'));
    binds.push({ source: ccacheDir, inner: `${accelRoot}/ccache`, rw: true });
    launcher = tool(ccacheBin);
    Object.assign(env, {
      CCACHE_DIR: `${accelRoot}/ccache`,
      CCACHE_BASEDIR: '/workspace',
      CCACHE_COMPILERCHECK: `string:${host.triple}-gcc-${host.major}:${crossFullVersion(host)}:${image.triple}/${image.dir}`,
      CCACHE_SLOPPINESS: 'include_file_mtime,include_file_ctime',
      CCACHE_NOHASHDIR: '1',
    });
  }
  if (distccBin) {
    const distcc = tool(distccBin);
    // distcc is handed each compiler by its host driver's bare name (TRIPLE-gcc-N): what distccd
    // servers run and whitelist. In the chroot, bin/NAME leads to the image's driver (the shim),
    // and the bin/distcc shim copy (static, so ccache or the driver shim runs it as it is) puts
    // bin first in PATH and rewrites the compiler argument.
    fs.copyFileSync(shim, inAccel('bin/distcc'));
    fs.chmodSync(inAccel('bin/distcc'), 0o755);
    const drivers = new Map<string, string>();
    for (const line of map) {
      const [inner, program, flags] = line.split('\t');
      if (flags === 'cc' && inner && program && !drivers.has(path.posix.basename(program))) drivers.set(path.posix.basename(program), inner);
    }
    for (const [name, inner] of drivers) fs.symlinkSync(inner, inAccel(`bin/${name}`));
    map.push(`${accelRoot}/bin/distcc\t${distcc}\tdistcc`);
    fs.mkdirSync(inAccel('distcc'));
    Object.assign(env, distccEnv(decision.distccHosts, `${accelRoot}/distcc`));
    if (ccacheBin) env.CCACHE_PREFIX = `${accelRoot}/bin/distcc`;
    else launcher = `${accelRoot}/bin/distcc`;
    const cxx = `${t}-g++-${host.major}`;
    await probeDistccHosts(ctx, decision.distccHosts.map(parseDistccHost), s.arch, { c: `${t}-gcc-${host.major}`, ...(drivers.has(cxx) ? { cxx } : {}) });
  }
  fs.writeFileSync(inAccel('launcher'), launcher ? `${launcher}\n` : '');
  fs.writeFileSync(inAccel('cflags'), decision.targetFlags.map((f) => `${f}\n`).join(''));
  fs.writeFileSync(inAccel('map'), `${map.join('\n')}\n`);
  fs.writeFileSync(inAccel('env'), Object.entries(env).map(([k, val]) => `${k}=${val}\n`).join(''));

  if (o.guardDpkg) {
    // dpkg cannot replace a file that is a mount point, and must never write through one:
    // while the binds are up, dpkg refuses with a message instead.
    fs.writeFileSync(inAccel('dpkg-guard'), '#!/bin/sh\necho "imgbuild: dpkg is disabled while the host compiler is bound into this chroot (--accel); run apt/dpkg in a session with --accel none" >&2\nexit 1\n', { mode: 0o755 });
    const dpkg = resolveInRoot(rootHost, '/usr/bin/dpkg');
    if (dpkg.type === 'file') binds.push({ source: nsRoot(`${accelRoot}/dpkg-guard`), inner: dpkg.inner });
  }

  const targets = binds.map((b) => nsRoot(b.inner));
  let up = true;
  const disable = async () => {
    if (!up) return;
    // Nothing may run the shim while its binds come off.
    await s.ns.killAll();
    // Newest first, and whatever a recursive bind brought along with it before that bind.
    const below = binds.filter((b2) => b2.recursive).map((b2) => `${nsRoot(b2.inner)}/`);
    const mine = new Set(targets);
    const ours = s.ns
      .mountinfo()
      .map((m) => m.target)
      .filter((t2) => mine.has(t2) || below.some((d) => t2.startsWith(d)))
      .reverse();
    if (ours.length > 0) {
      const r = await s.ns.exec('umount', ours, { allowFailure: true, signal: null });
      const left = new Set(s.ns.mountinfo().map((m) => m.target));
      const still = ours.filter((t2) => left.has(t2));
      if (still.length > 0) throw new Error(`accel binds still mounted: ${still.join(', ')} (${r.all.trim()})`);
    }
    up = false;
  };
  // Registered before the batch: a batch cut short still has its binds taken off.
  s.defer('remove the host compiler binds', disable);
  const script = binds
    .map((b, i) => `mount ${b.recursive ? '--rbind' : '--bind'} -o ${b.rw ? 'nosuid,nodev,noexec' : 'ro,nosuid,nodev'} "\${${2 * i + 1}}" "\${${2 * i + 2}}" || exit 1`)
    // One line: the namespace holder runs it (see namespace.ts servable).
    .join('; ');
  const args = binds.flatMap((b) => [b.source, nsRoot(b.inner)]);
  const r = await s.ns.exec('sh', ['-c', script, 'sh', ...args], { allowFailure: true, signal: null });
  if (r.exitCode !== 0) throw new Error(`binding the host compiler into the chroot failed: ${r.all.trim()}`);
  // `mount --bind -o ro` remounts read-only in a second step: check it held for every bind.
  const mi = new Map(s.ns.mountinfo().map((m) => [m.target, m]));
  for (const b of binds) {
    const m = mi.get(nsRoot(b.inner));
    if (!m) throw new Error(`accel bind of ${b.inner} did not land`);
    if (!b.rw && !/(^|,)ro(,|$)/.test(m.options)) throw new Error(`accel bind of ${b.inner} is not read-only (${m.options})`);
  }
  return { decision, env, ...(ccacheDir ? { ccacheDir } : {}), mounts: binds.length, disable };
}

/** The host's x86-64 library directories (merged /usr: one; otherwise /usr/lib/... and /lib/...). */
function hostLibraryDirs(): string[] {
  const dirs = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu'].filter((d) => fs.existsSync(d)).map((d) => fs.realpathSync(d));
  return [...new Set(dirs)];
}

function loaderHasArgv0(loader: string): boolean {
  try {
    return fs.readFileSync(loader).includes('--argv0');
  } catch {
    return false;
  }
}

function findProgram(name: string): string | undefined {
  for (const d of ['/usr/bin', '/usr/local/bin', '/bin']) {
    const p = path.join(d, name);
    if (fs.existsSync(p)) return fs.realpathSync(p);
  }
  return undefined;
}

/**
 * The compiler part of a wheel cache key: emulated (the image's own gcc, which the image's hash
 * covers) or the host cross gcc (its build, and which image gcc directory it relocates into).
 */
export function accelIdentity(req: AccelRequest, decision: AccelDecision | undefined): string {
  if (!decision) return `undecided:${req.mode}:${req.gcc ?? ''}`;
  if (decision.kind === 'none') return 'emulated';
  return `cross:${decision.host.triple}-gcc-${decision.host.major}:${crossFullVersion(decision.host)}:${decision.image.triple}/${decision.image.dir}:${decision.targetFlags.join(' ')}`;
}

function crossFullVersion(host: HostCross): string {
  // The gcc-cross directory's own files date the build of the compiler: enough to tell updates apart.
  try {
    const st = fs.statSync(path.join(host.gccDir, 'cc1'));
    return `${st.size}-${Math.floor(st.mtimeMs)}`;
  } catch {
    return 'unknown';
  }
}

/**
 * Decide and, when it applies, enable acceleration in a session; says what it chose and why.
 * Returns the environment for the chroot's commands (empty without acceleration).
 */
export async function startAccel(ctx: Context, s: Session, req: AccelRequest, o: { guardDpkg?: boolean } = {}): Promise<{ decision: AccelDecision; handle?: AccelHandle; env: Record<string, string> }> {
  const decision = decideAccel(req, s.arch, s.ns.hostPath(s.root));
  if (decision.kind === 'none') {
    if (req.mode === 'auto' && needsEmulation(s.arch)) ctx.emit({ kind: 'warn', message: `${decision.reason}; builds run fully emulated (slow)` });
    return { decision, env: {} };
  }
  const handle = await enableAccel(ctx, s, decision, o);
  ctx.emit({ kind: 'notice', message: `accel: ${decision.reason}${handle.ccacheDir ? `; ccache in ${handle.ccacheDir}` : ''}` });
  return { decision, handle, env: handle.env };
}
