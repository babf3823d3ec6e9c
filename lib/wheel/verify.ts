// Does a built wheel install and load on the image? Its tags, its ELF members' machine, every
// DT_NEEDED and every symbol version against the wheel, its dependencies and the image's libraries.
import fs from 'node:fs';
import path from 'node:path';
import type { Arch } from '../core/arch.js';
import { armCpuArchNames, runsOnArmv6 } from '../parse/arm-attributes.js';
import { elfMachineNames, readElfDynamic } from '../parse/elf.js';
import { isSafeEntryName, readZip } from '../parse/zip.js';
import { compareVersions, parseWheelName, tagProblems, type WheelName } from './names.js';
import { elvesIn, findLibrary, libraryDirs, resolveSafely } from './libraries.js';

export interface WheelReport {
  name: WheelName;
  /** Empty when the wheel installs and its libraries load on the image. */
  problems: string[];
  elves: { member: string; arch?: Arch; needed: string[] }[];
  unresolved: { member: string; soname: string }[];
  /** Symbol versions a member needs that the library it gets them from does not define. */
  missingVersions: { member: string; file: string; library: string; versions: string[] }[];
}

export interface VerifyOptions {
  /** Mounted image root on the host. */
  rootHost: string;
  arch: Arch;
  /** The image's Python, "3.11". */
  python: string;
  /** The image's glibc ("2.36"): a manylinux wheel for a newer one is refused by its tag. */
  glibc?: string;
  /** The wheel platform machine when it is not the arch's: armv6l for an ARMv6 armhf userland. */
  machine?: string;
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
 * 2: symbol versions too; 3: the ARM architecture against an ARMv6 userland). Part of the wheel
 * cache key, so a wheel verified by fewer checks is
 * never served as verified.
 */
export const verificationLevel = 3;

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
    // An ARMv6 board (Pi Zero, 1) stops at the first ARMv7 instruction: "Illegal instruction".
    if (o.machine === 'armv6l' && elf.armCpuArch !== undefined && !runsOnArmv6(elf.armCpuArch)) {
      problems.push(`${elf.member} is built for ARM ${armCpuArchNames[elf.armCpuArch] ?? `architecture ${elf.armCpuArch}`}; the image's userland is ARMv6 (Raspberry Pi Zero and 1), where it stops with "Illegal instruction": build it with the image's compiler defaults (-march=armv6 -mfpu=vfp -marm)`);
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

// The newest of `defs` with the same name part as `like` (GLIBCXX_ for GLIBCXX_3.4.29).
function newestOfKind(defs: string[], like: string): string | undefined {
  const kind = /^[^\d]*/.exec(like)![0];
  return defs.filter((d) => /^[^\d]*/.exec(d)![0] === kind && /\d/.test(d)).sort(compareVersions).pop();
}
