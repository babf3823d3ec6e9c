// Does a built wheel install and load on the image? Its tags against the image's Python and arch,
// its ELF members' machine, and every DT_NEEDED against the wheel, its dependencies and the image's
// library directories. Pure apart from reading the wheel and files inside the image root.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { type ElfDynamic, elfArch, elfMachineNames, elfMatchesArch, readElfDynamic, readElfHeader } from '../parse/elf.js';
import { PreconditionError, UsageError } from '../core/errors.js';
import { pythonAbi } from './tags.js';
import { resolveInRoot, type Resolved } from '../host/safe-path.js';
import { type ZipEntry, isSafeEntryName, readEntry, readEntryHead, readZip } from '../parse/zip.js';

export interface WheelName {
  file: string;
  distribution: string;
  version: string;
  build?: string;
  /** Compressed tag sets, split on '.'. */
  python: string[];
  abi: string[];
  platform: string[];
}

export interface WheelElf {
  member: string;
  machine: number;
  class: 1 | 2;
  littleEndian: boolean;
  arch?: Arch;
  dynamic?: ElfDynamic;
}

export interface WheelReport {
  name: WheelName;
  /** Empty when the wheel installs and its libraries load on the image. */
  problems: string[];
  elves: { member: string; arch?: Arch; needed: string[] }[];
  unresolved: { member: string; soname: string }[];
  /** Symbol versions a member needs that the library it gets them from does not define. */
  missingVersions: { member: string; file: string; library: string; versions: string[] }[];
}

/** PEP 427: {distribution}-{version}[-{build}]-{python}-{abi}-{platform}.whl */
export function parseWheelName(file: string): WheelName {
  const m = /^([^-]+)-([^-]+)(?:-(\d[^-]*))?-([^-]+)-([^-]+)-([^-]+)\.whl$/.exec(path.basename(file));
  const sets = m ? [m[4]!, m[5]!, m[6]!].map((set) => set.split('.')) : [];
  if (!m || sets.flat().includes('')) {
    throw new UsageError(`${file} is not a wheel file name`, 'a wheel is named {distribution}-{version}[-{build}]-{python}-{abi}-{platform}.whl (PEP 427)');
  }
  const [python, abi, platform] = sets as [string[], string[], string[]];
  const name: WheelName = { file, distribution: m[1]!, version: m[2]!, python, abi, platform };
  if (m[3]) name.build = m[3];
  return name;
}

/** Why pip on the image would refuse the wheel's tags; empty when it installs. */
export function tagProblems(w: WheelName, image: { python: string; arch: Arch }): string[] {
  const problems: string[] = [];
  const machine = archTable[image.arch].wheelMachine;
  const platforms = `linux_${machine}, manylinux*_${machine} or any`;
  const platformOk = (p: string) => p === 'any' || p === `linux_${machine}` || /^manylinux(?:1|2010|2014|_\d+_\d+)_(.+)$/.exec(p)?.[1] === machine;
  if (!w.platform.some(platformOk)) {
    const musl = w.platform.filter((p) => p.startsWith('musllinux_'));
    problems.push(
      musl.length > 0
        ? `${w.file} is built for musl libc (${musl.join('.')}); the image uses glibc and needs ${platforms}`
        : `${w.file} is for platform ${w.platform.join('.')}; the image needs ${platforms}`,
    );
  }

  const [major = 0, minor = 0] = image.python.split('.').map(Number);
  const cp = `cp${major}${minor}`;
  const abi = pythonAbi(image.python);
  const olderOrSame = (tag: string, prefix: string) => {
    const v = new RegExp(`^${prefix}${major}(\\d+)$`).exec(tag);
    return v !== null && Number(v[1]) <= minor;
  };
  // The pairs pip's packaging.tags accepts for CPython: exact ABI, abi3 from older minors, pure Python.
  const pairOk = (py: string, a: string) =>
    a === abi ? py === cp : a === 'abi3' ? olderOrSame(py, 'cp') : a === 'none' ? py === cp || py === `py${major}` || olderOrSame(py, 'py') : false;
  if (!w.python.some((py) => w.abi.some((a) => pairOk(py, a)))) {
    const usable = w.abi.filter((a) => a === abi || a === 'abi3' || a === 'none');
    if (usable.length === 0) {
      problems.push(`${w.file} has ABI tag ${w.abi.join('.')}; the image's Python ${image.python} needs ${abi}, abi3 or none`);
    } else {
      const needs = usable.map((a) => (a === abi ? `${cp} for ABI ${abi}` : a === 'abi3' ? `cp${major}2 to ${cp} for abi3` : `${cp}, py${major} or py${major}${minor} for ABI none`));
      problems.push(`${w.file} has python tag ${w.python.join('.')}; the image's Python ${image.python} needs ${needs.join('; ')}`);
    }
  }
  return problems;
}

/** Every member with an ELF header, with its machine and dynamic section. */
export function wheelElves(file: string): WheelElf[] {
  return elvesIn(file, readZip(file));
}

function elvesIn(file: string, entries: ZipEntry[]): WheelElf[] {
  const elves: WheelElf[] = [];
  for (const e of entries) {
    if (e.name.endsWith('/') || e.size < 52 || !isSafeEntryName(e.name)) continue;
    // Only ELF members are read whole: most of a wheel is Python source.
    if (!readEntryHead(file, e, 4).equals(ELF_MAGIC)) continue;
    const bytes = readEntry(file, e);
    const h = readElfHeader(bytes);
    if (!h) continue;
    const elf: WheelElf = { member: e.name, machine: h.machine, class: h.class, littleEndian: h.littleEndian };
    const arch = elfArch(h);
    if (arch) elf.arch = arch;
    const dynamic = readElfDynamic(bytes);
    if (dynamic) elf.dynamic = dynamic;
    elves.push(elf);
  }
  return elves;
}

const ELF_MAGIC = Buffer.from([0x7f, 0x45, 0x4c, 0x46]);

/** The directories (inside the image) its dynamic loader searches: ld.so.conf, then the defaults. */
export function libraryDirs(rootHost: string, arch: Arch): string[] {
  const dirs: string[] = [];
  readLdConf(rootHost, '/etc/ld.so.conf', dirs, new Set(), 0);
  const { triplet, elfClass } = archTable[arch];
  dirs.push(`/lib/${triplet}`, `/usr/lib/${triplet}`, ...(elfClass === 2 ? ['/lib64', '/usr/lib64'] : []), '/lib', '/usr/lib');
  return [...new Set(dirs.map((d) => path.posix.normalize(d).replace(/(.)\/+$/, '$1')))];
}

const maxIncludeDepth = 8;
const maxConfBytes = 1 << 20;

function readLdConf(root: string, inner: string, dirs: string[], seen: Set<string>, depth: number): void {
  const r = resolveSafely(root, inner);
  // Keyed by the resolved path, so a symlinked include of a file already read ends the recursion.
  if (depth > maxIncludeDepth || r?.type !== 'file' || seen.has(r.inner) || fs.statSync(r.host).size > maxConfBytes) return;
  seen.add(r.inner);
  const text = fs.readFileSync(r.host, 'utf8');
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const include = /^include\s+(.+)$/.exec(line);
    if (include) {
      // As in ldconfig, a relative include is relative to the including file's directory.
      for (const pattern of include[1]!.split(/\s+/)) {
        const absolute = pattern.startsWith('/') ? pattern : path.posix.join(path.posix.dirname(inner), pattern);
        for (const conf of globInRoot(root, absolute)) readLdConf(root, conf, dirs, seen, depth + 1);
      }
    } else if (line.startsWith('/')) {
      dirs.push(line);
    }
    // Anything else (hwcap lines, relative paths) ldconfig ignores or warns about.
  }
}

/** `dir/pattern` with * and ? in the last component only (the ld.so.conf.d/*.conf form), sorted like glob(3). */
function globInRoot(root: string, pattern: string): string[] {
  const dir = path.posix.dirname(pattern);
  const base = path.posix.basename(pattern);
  if (/[*?]/.test(dir)) return [];
  if (!/[*?]/.test(base)) return [pattern];
  const r = resolveSafely(root, dir);
  if (r?.type !== 'dir') return [];
  const re = new RegExp(`^${[...base].map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[\\^$.+()[\]{}|]/, '\\$&'))).join('')}$`);
  return fs
    .readdirSync(r.host)
    .filter((n) => re.test(n) && (!n.startsWith('.') || base.startsWith('.')))
    .sort()
    .map((n) => path.posix.join(dir, n));
}

/**
 * The inner path `dir/soname` of the first of `dirs` holding a library the loader of `arch` would
 * load: one of another architecture with the right name is skipped, as ld.so skips it.
 */
export function findLibrary(rootHost: string, dirs: string[], soname: string, arch: Arch): string | undefined {
  // ld.so takes a name with a slash as a path; a relative one depends on the cwd, so it cannot be checked.
  const candidates = soname.includes('/') ? (soname.startsWith('/') ? [soname] : []) : dirs.map((d) => path.posix.join(d, soname));
  for (const inner of candidates) {
    const r = resolveSafely(rootHost, inner);
    if (r?.type !== 'file') continue;
    const h = readElfHeader(readHead(r.host, 64));
    if (h && elfMatchesArch(h, arch)) return inner;
  }
  return undefined;
}

export interface VerifyOptions {
  /** Mounted image root on the host. */
  rootHost: string;
  arch: Arch;
  /** The image's Python, "3.11". */
  python: string;
  /** Sonames shipped by wheels this one depends on. */
  provided?: string[];
}

// The vDSO is mapped by the kernel, never read from a file.
const kernelProvided = /^linux-(vdso|gate)\.so\.\d+$/;
// The dynamic loader lives where its PT_INTERP path says, often outside the search path (/lib64).
const loader = /^ld-linux.*\.so(\.\d+)*$/;
const loaderDirs = ['/lib', '/lib64', '/usr/lib', '/usr/lib64'];
const maxLibraryBytes = 512 * 1024 * 1024;

/**
 * What verifyWheel checks, as a number that grows with it (1: tags, machines, NEEDED libraries;
 * 2: symbol versions too). Part of the wheel cache key, so a wheel verified by fewer checks is
 * never served as verified.
 */
export const verificationLevel = 2;

export function verifyWheel(file: string, o: VerifyOptions): WheelReport {
  const name = parseWheelName(file);
  const problems = tagProblems(name, o);
  const entries = readZip(file);
  for (const e of entries) if (!isSafeEntryName(e.name)) problems.push(`${file} has a member with an unsafe path: ${JSON.stringify(e.name)}`);
  // A library in the wheel is found by $ORIGIN-relative RPATH/RUNPATH or, once installed, by
  // whatever loads it first; auditwheel-style wheels rely on both, so any shipped file name counts.
  const shipped = new Set(entries.filter((e) => !e.name.endsWith('/')).map((e) => path.posix.basename(e.name)));
  const provided = new Set(o.provided ?? []);
  const dirs = libraryDirs(o.rootHost, o.arch);
  const inImage = new Map<string, boolean>();

  const report: WheelReport = { name, problems, elves: [], unresolved: [], missingVersions: [] };
  const elves = elvesIn(file, entries);
  // Version definitions of a library: the wheel's own copy, or the image's file (read once).
  const shippedDefs = new Map(elves.filter((e) => e.dynamic && e.arch === o.arch).map((e) => [path.posix.basename(e.member), { where: e.member, defs: e.dynamic!.verdef }]));
  const imageDefs = new Map<string, { where: string; defs: string[] } | undefined>();
  const definitions = (soname: string, rpathDirs: string[]) => {
    if (shippedDefs.has(soname)) return shippedDefs.get(soname);
    if (provided.has(soname) || kernelProvided.test(soname)) return undefined;
    const key = `${rpathDirs.join(':')}\0${soname}`;
    if (!imageDefs.has(key)) {
      const inner = (rpathDirs.length > 0 && findLibrary(o.rootHost, rpathDirs, soname, o.arch)) || findLibrary(o.rootHost, loader.test(soname) ? [...dirs, ...loaderDirs] : dirs, soname, o.arch);
      const r = inner ? resolveSafely(o.rootHost, inner) : undefined;
      // A library too big to read (none real is; a hostile image's may be) is not checked.
      const readable = r?.type === 'file' && fs.statSync(r.host).size <= maxLibraryBytes;
      imageDefs.set(key, readable && inner ? { where: `${inner}${r.inner !== inner ? ` (${path.posix.basename(r.inner)})` : ''}`, defs: readElfDynamic(fs.readFileSync(r.host))?.verdef ?? [] } : undefined);
    }
    return imageDefs.get(key);
  };
  for (const elf of elves) {
    const needed = elf.dynamic?.needed ?? [];
    report.elves.push(elf.arch ? { member: elf.member, arch: elf.arch, needed } : { member: elf.member, needed });
    if (elf.arch !== o.arch) {
      const machine = elfMachineNames[elf.machine] ?? `machine ${elf.machine}`;
      const detail = elf.arch ? (elf.arch !== machine ? ` (${elf.arch})` : '') : ` (${elf.class === 2 ? 64 : 32}-bit ${elf.littleEndian ? 'little' : 'big'}-endian)`;
      problems.push(`${elf.member} is for ${machine}${detail}, the image is ${o.arch}`);
      // Its dependencies would be looked up for the wrong machine: the arch problem says it all.
      continue;
    }
    // An absolute RPATH/RUNPATH entry names a directory in the image, searched before the defaults.
    const rpathDirs = [...(elf.dynamic?.rpath ?? []), ...(elf.dynamic?.runpath ?? [])].filter((d) => d.startsWith('/') && !d.includes('$'));
    const searched = [...new Set([...rpathDirs, ...dirs])];
    for (const soname of needed) {
      if (shipped.has(soname) || provided.has(soname) || kernelProvided.test(soname)) continue;
      if (rpathDirs.length > 0 && findLibrary(o.rootHost, rpathDirs, soname, o.arch)) continue;
      if (!inImage.has(soname)) inImage.set(soname, findLibrary(o.rootHost, loader.test(soname) ? [...dirs, ...loaderDirs] : dirs, soname, o.arch) !== undefined);
      if (inImage.get(soname)) continue;
      report.unresolved.push({ member: elf.member, soname });
      problems.push(`${elf.member} needs ${soname}, which the image does not have (searched ${searched.join(', ')})`);
    }
    // As ld.so does: a library without version definitions satisfies any version; a weak need only warns.
    const wanted = new Map<string, string[]>();
    for (const n of elf.dynamic?.verneed ?? []) if (!n.weak) wanted.set(n.file, [...(wanted.get(n.file) ?? []), n.version]);
    for (const [soname, versions] of wanted) {
      const lib = definitions(soname, rpathDirs);
      if (!lib || lib.defs.length === 0) continue;
      const missing = [...new Set(versions.filter((v) => !lib.defs.includes(v)))].sort(compareVersions);
      if (missing.length === 0) continue;
      report.missingVersions.push({ member: elf.member, file: soname, library: lib.where, versions: missing });
      const newest = newestOfKind(lib.defs, missing[0]!);
      problems.push(
        `${elf.member} needs ${missing.join(', ')} from ${soname}, which ${shippedDefs.has(soname) ? 'the wheel\'s' : 'the image\'s'} ${lib.where} does not define${newest ? ` (it has up to ${newest})` : ''}: it was built against a newer ${soname} than the board has`,
      );
    }
  }
  return report;
}

/** Dotted version names compared by their numbers: GLIBCXX_3.4.9 < GLIBCXX_3.4.29. */
export function compareVersions(a: string, b: string): number {
  const split = (v: string) => v.split(/(\d+)/).map((p, i) => (i % 2 ? Number(p) : p));
  const x = split(a);
  const y = split(b);
  for (let i = 0; i < Math.max(x.length, y.length); i++) {
    const p = x[i];
    const q = y[i];
    if (p === q) continue;
    if (p === undefined) return -1;
    if (q === undefined) return 1;
    if (typeof p === 'number' && typeof q === 'number') return p - q;
    return String(p) < String(q) ? -1 : 1;
  }
  return 0;
}

/** The newest of `defs` with the same name part as `like` (GLIBCXX_ for GLIBCXX_3.4.29). */
function newestOfKind(defs: string[], like: string): string | undefined {
  const kind = /^[^\d]*/.exec(like)![0];
  return defs.filter((d) => /^[^\d]*/.exec(d)![0] === kind && /\d/.test(d)).sort(compareVersions).pop();
}

/** resolveInRoot, with a hostile layout (symlink loop, file used as a directory) read as "not there". */
function resolveSafely(root: string, inner: string): Resolved | undefined {
  try {
    return resolveInRoot(root, inner);
  } catch (error) {
    if (error instanceof PreconditionError) return undefined;
    throw error;
  }
}

function readHead(host: string, n: number): Buffer {
  const fd = fs.openSync(host, 'r');
  try {
    const b = Buffer.alloc(n);
    return b.subarray(0, fs.readSync(fd, b, 0, n, 0));
  } finally {
    fs.closeSync(fd);
  }
}
