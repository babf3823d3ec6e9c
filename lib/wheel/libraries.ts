// The libraries of a wheel and of an image: a wheel's ELF members, the image's library directories
// (ld.so.conf and the defaults) and the file the image's loader would load for a soname.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { armCpuArch } from '../parse/arm-attributes.js';
import { type ElfDynamic, elfArch, elfMatchesArch, readElfDynamic, readElfHeader } from '../parse/elf.js';
import { PreconditionError } from '../core/errors.js';
import { readHead, resolveInRoot, type Resolved } from '../host/safe-path.js';
import { type ZipEntry, isSafeEntryName, readEntry, readEntryHead, readZip } from '../parse/zip.js';

export interface WheelElf {
  member: string;
  machine: number;
  class: 1 | 2;
  littleEndian: boolean;
  arch?: Arch;
  dynamic?: ElfDynamic;
  /** ARM only: Tag_CPU_arch of its build attributes (6 = v6, 10 = v7). */
  armCpuArch?: number;
}

/** Every member with an ELF header, with its machine and dynamic section. */
export function wheelElves(file: string): WheelElf[] {
  return elvesIn(file, readZip(file));
}

/** The ELF members of a wheel whose ZIP directory `entries` is already read. */
export function elvesIn(file: string, entries: ZipEntry[]): WheelElf[] {
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
    const cpu = h.machine === 40 ? armCpuArch(bytes) : undefined;
    if (cpu !== undefined) elf.armCpuArch = cpu;
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

// `dir/pattern` with * and ? in the last component only (the ld.so.conf.d/*.conf form), sorted like glob(3).
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

/** resolveInRoot, with a hostile layout (symlink loop, file used as a directory) read as "not there". */
export function resolveSafely(root: string, inner: string): Resolved | undefined {
  try {
    return resolveInRoot(root, inner);
  } catch (error) {
    if (error instanceof PreconditionError) return undefined;
    throw error;
  }
}
