// Pure ELF header reading: which machine a binary is for, and its dynamic dependencies.
import { type Arch, archTable } from '../core/arch.js';

export interface ElfHeader {
  class: 1 | 2;
  littleEndian: boolean;
  type: number;
  machine: number;
  flags: number;
}

export function readElfHeader(b: Buffer): ElfHeader | undefined {
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const cls = b[4];
  const le = b[5] === 1;
  if (cls !== 1 && cls !== 2) return undefined;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  return { class: cls, littleEndian: le, type: u16(16), machine: u16(18), flags: u32(cls === 2 ? 48 : 36) };
}

const EF_ARM_ABI_FLOAT_HARD = 0x400;

/** The userland architecture of an executable, or undefined if it is not one we know. */
export function elfArch(h: ElfHeader): Arch | undefined {
  if (!h.littleEndian) return undefined;
  switch (h.machine) {
    case 183:
      return h.class === 2 ? 'aarch64' : undefined;
    case 40:
      return h.flags & EF_ARM_ABI_FLOAT_HARD ? 'armhf' : 'armel';
    case 62:
      return h.class === 2 ? 'x86_64' : undefined;
    case 3:
      return 'i386';
    case 243:
      return h.class === 2 ? 'riscv64' : undefined;
    default:
      return undefined;
  }
}

export const elfMachineNames: Record<number, string> = { 3: 'i386', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv' };

export interface ElfDynamic {
  /** DT_NEEDED entries, in order. */
  needed: string[];
  soname?: string;
  /** DT_RPATH and DT_RUNPATH, split on ':'. */
  rpath: string[];
  runpath: string[];
  /** Symbol versions it needs, per library file (DT_VERNEED): ["libstdc++.so.6", "GLIBCXX_3.4.29"]. */
  verneed: ElfVersionNeed[];
  /** Versions it defines (DT_VERDEF), without the base entry that names the file itself. */
  verdef: string[];
}

export interface ElfVersionNeed {
  file: string;
  version: string;
  /** VER_FLG_WEAK: ld.so only warns when it is missing. */
  weak: boolean;
}

const PT_LOAD = 1;
const PT_DYNAMIC = 2;
const SHT_DYNAMIC = 6;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const DT_STRSZ = 10;
const DT_SONAME = 14;
const DT_RPATH = 15;
const DT_RUNPATH = 29;
const DT_VERDEF = 0x6ffffffc;
const DT_VERDEFNUM = 0x6ffffffd;
const DT_VERNEED = 0x6ffffffe;
const DT_VERNEEDNUM = 0x6fffffff;
const SHT_NOBITS = 8;
const VER_FLG_BASE = 1;
const VER_FLG_WEAK = 2;

// A byte range of the file; `addr` is where it is mapped (program headers) or 0.
interface Range {
  offset: number;
  size: number;
  addr: number;
}

/**
 * The dynamic section of an ELF file (ELF32/ELF64, either byte order): found through the program
 * headers, or the section headers when there are none. undefined for non-ELF, static or damaged files.
 */
export function readElfDynamic(b: Buffer): ElfDynamic | undefined {
  const h = readElfHeader(b);
  if (!h) return undefined;
  const le = h.littleEndian;
  const wide = h.class === 2;
  // Every read is bounds-checked, so hostile offsets give undefined instead of a RangeError.
  const fits = (o: number, n: number) => Number.isSafeInteger(o) && Number.isSafeInteger(n) && o >= 0 && n >= 0 && o + n <= b.length;
  const u16 = (o: number) => (fits(o, 2) ? (le ? b.readUInt16LE(o) : b.readUInt16BE(o)) : undefined);
  const u32 = (o: number) => (fits(o, 4) ? (le ? b.readUInt32LE(o) : b.readUInt32BE(o)) : undefined);
  const u64 = (o: number) => (fits(o, 8) ? Number(le ? b.readBigUInt64LE(o) : b.readBigUInt64BE(o)) : undefined);
  const word = wide ? u64 : u32;
  // An ELF64 d_tag is signed; the tags read here are positive (the GNU version tags are above 2^31).
  const field = (base: number, off64: number, off32: number) => word(base + (wide ? off64 : off32));

  const ph = fromProgramHeaders();
  const fromPh = ph && readEntries(ph);
  if (fromPh) return fromPh;
  const sh = fromSectionHeaders();
  return sh && readEntries(sh);

  /** Where the dynamic table is, how to find its string table, and the file offset of a mapped address. */
  interface Layout {
    table: Range;
    strtab: (tags: Map<number, number>) => Range | undefined;
    at: (addr: number) => number | undefined;
  }

  function mapper(ranges: Range[]): (addr: number) => number | undefined {
    return (addr) => {
      const r = ranges.find((l) => addr >= l.addr && addr < l.addr + l.size);
      return r && r.offset + (addr - r.addr);
    };
  }

  function fromProgramHeaders(): Layout | undefined {
    const phoff = field(0, 32, 28);
    const entsize = u16(wide ? 54 : 42);
    const count = u16(wide ? 56 : 44);
    if (phoff === undefined || !entsize || !count || entsize < (wide ? 56 : 32)) return undefined;
    const loads: Range[] = [];
    let table: Range | undefined;
    for (let i = 0; i < count; i++) {
      const p = phoff + i * entsize;
      const type = u32(p);
      const offset = field(p, 8, 4);
      const addr = field(p, 16, 8);
      const size = field(p, 32, 16);
      if (type === undefined || offset === undefined || addr === undefined || size === undefined) return undefined;
      if (type === PT_LOAD) loads.push({ offset, size, addr });
      if (type === PT_DYNAMIC && !table) table = { offset, size, addr };
    }
    if (!table) return undefined;
    // DT_STRTAB and the version tables are virtual addresses: the PT_LOAD segment that holds one gives its file offset.
    const at = mapper(loads);
    const strtab = (tags: Map<number, number>) => {
      const addr = tags.get(DT_STRTAB);
      const offset = addr === undefined ? undefined : at(addr);
      if (addr === undefined || offset === undefined) return undefined;
      const seg = loads.find((l) => addr >= l.addr && addr < l.addr + l.size)!;
      return { offset, size: Math.min(tags.get(DT_STRSZ) ?? Infinity, seg.offset + seg.size - offset), addr };
    };
    return { table, strtab, at };
  }

  function fromSectionHeaders(): Layout | undefined {
    const shoff = field(0, 40, 32);
    const entsize = u16(wide ? 58 : 46);
    const count = u16(wide ? 60 : 48);
    if (shoff === undefined || !entsize || !count || entsize < (wide ? 64 : 40)) return undefined;
    const section = (i: number): (Range & { type: number; link: number }) | undefined => {
      const s = shoff + i * entsize;
      const type = u32(s + 4);
      const addr = field(s, 16, 12);
      const offset = field(s, 24, 16);
      const size = field(s, 32, 20);
      const link = u32(s + (wide ? 40 : 24));
      if (type === undefined || addr === undefined || offset === undefined || size === undefined || link === undefined) return undefined;
      return { type, offset, size, link, addr };
    };
    const sections: (Range & { type: number; link: number })[] = [];
    for (let i = 0; i < count; i++) {
      const s = section(i);
      if (!s) return undefined;
      sections.push(s);
    }
    const dyn = sections.find((s) => s.type === SHT_DYNAMIC);
    if (!dyn) return undefined;
    const at = mapper(sections.filter((s) => s.addr !== 0 && s.type !== SHT_NOBITS));
    return { table: dyn, strtab: () => (dyn.link < count ? { ...sections[dyn.link]!, addr: 0 } : undefined), at };
  }

  function readEntries(layout: Layout): ElfDynamic | undefined {
    const { table } = layout;
    const entsize = wide ? 16 : 8;
    const size = Math.min(table.size, b.length - table.offset);
    if (!fits(table.offset, 0) || size < entsize) return undefined;
    const entries: [number, number][] = [];
    // Bounded by the table size, which is bounded by the buffer.
    for (let o = table.offset; o + entsize <= table.offset + size; o += entsize) {
      const tag = field(o, 0, 0);
      const val = field(o, 8, 4);
      if (tag === undefined || val === undefined || tag === 0) break;
      entries.push([tag, val]);
    }
    const tags = new Map<number, number>();
    for (const [tag, val] of entries) if (!tags.has(tag)) tags.set(tag, val);
    const strtab = layout.strtab(tags);
    if (!strtab || !fits(strtab.offset, 0)) return undefined;
    const end = Math.min(strtab.offset + strtab.size, b.length);
    const str = (off: number): string | undefined => {
      const start = strtab.offset + off;
      if (off < 0 || start >= end) return undefined;
      const nul = b.indexOf(0, start);
      if (nul < 0 || nul >= end) return undefined;
      return b.toString('utf8', start, nul);
    };
    const dyn: ElfDynamic = { needed: [], rpath: [], runpath: [], verneed: [], verdef: [] };
    for (const [tag, val] of entries) {
      if (tag !== DT_NEEDED && tag !== DT_SONAME && tag !== DT_RPATH && tag !== DT_RUNPATH) continue;
      const s = str(val);
      if (s === undefined) continue;
      if (tag === DT_NEEDED) dyn.needed.push(s);
      else if (tag === DT_SONAME) dyn.soname ??= s;
      else (tag === DT_RPATH ? dyn.rpath : dyn.runpath).push(...s.split(':').filter(Boolean));
    }
    readVersions(tags, layout.at, str, dyn);
    return dyn;
  }

  /**
   * Elf_Verneed (16 bytes: version, cnt, file, aux, next) with its Elf_Vernaux entries (16 bytes:
   * hash, flags, other, name, next), and Elf_Verdef (20 bytes: version, flags, ndx, cnt, hash, aux,
   * next) whose first Elf_Verdaux (name, next) names the version. Same layout in ELF32 and ELF64.
   * Every chain is walked at most its declared count of steps, forward only.
   */
  function readVersions(tags: Map<number, number>, at: (addr: number) => number | undefined, str: (off: number) => string | undefined, dyn: ElfDynamic): void {
    const limit = 4096;
    const needAddr = tags.get(DT_VERNEED);
    let o = needAddr === undefined ? undefined : at(needAddr);
    for (let i = 0; o !== undefined && i < Math.min(tags.get(DT_VERNEEDNUM) ?? 0, limit); i++) {
      const cnt = u16(o + 2);
      const file = u32(o + 4);
      const aux = u32(o + 8);
      const next = u32(o + 12);
      if (cnt === undefined || file === undefined || aux === undefined || next === undefined) break;
      const fileName = str(file);
      let a = o + aux;
      for (let j = 0; j < Math.min(cnt, limit) && fileName !== undefined; j++) {
        const flags = u16(a + 4);
        const name = u32(a + 8);
        const anext = u32(a + 12);
        const version = name === undefined ? undefined : str(name);
        if (flags === undefined || version === undefined || anext === undefined) break;
        dyn.verneed.push({ file: fileName, version, weak: (flags & VER_FLG_WEAK) !== 0 });
        if (anext === 0) break;
        a += anext;
      }
      if (next === 0) break;
      o += next;
    }
    const defAddr = tags.get(DT_VERDEF);
    o = defAddr === undefined ? undefined : at(defAddr);
    for (let i = 0; o !== undefined && i < Math.min(tags.get(DT_VERDEFNUM) ?? 0, limit); i++) {
      const flags = u16(o + 2);
      const aux = u32(o + 12);
      const next = u32(o + 16);
      const name = aux === undefined ? undefined : u32(o + aux);
      const version = name === undefined ? undefined : str(name);
      if (flags === undefined || version === undefined || next === undefined) break;
      if (!(flags & VER_FLG_BASE)) dyn.verdef.push(version);
      if (next === 0) break;
      o += next;
    }
  }
}

const EF_ARM_ABI_FLOAT_SOFT = 0x200;

/** Whether the dynamic loader of `arch` would load this object: class, byte order, machine, ARM float ABI. */
export function elfMatchesArch(h: ElfHeader, arch: Arch): boolean {
  const info = archTable[arch];
  if (!h.littleEndian || h.class !== info.elfClass || h.machine !== info.elfMachine) return false;
  // glibc on ARM rejects an object that declares the other float ABI; one that declares none is loaded.
  if (arch === 'armhf') return !(h.flags & EF_ARM_ABI_FLOAT_SOFT);
  if (arch === 'armel') return !(h.flags & EF_ARM_ABI_FLOAT_HARD);
  return true;
}
