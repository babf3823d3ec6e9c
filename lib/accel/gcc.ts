// The image's gcc, found from its files: where it lives, and the target defaults (-march, -mfpu,
// ...) it was configured with, compared with the host cross gcc's.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { resolveInRoot } from '../host/safe-path.js';

/** The image's gcc: where its files are, as paths inside the image. */
export interface ImageGcc {
  triple: string;
  /** The directory name under /usr/lib/gcc/TRIPLE (Debian: "12"; others: "12.2.0"). */
  dir: string;
  /** Where cc1 and the other gcc executables are: /usr/lib/gcc/TRIPLE/DIR, or /usr/libexec/gcc/TRIPLE/DIR (Debian 13). */
  execDir: string;
  major: string;
  /** Drivers and tools that resolve to files of this gcc (resolved paths, no symlinks). */
  hasCxx: boolean;
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
      const execDir = [`/usr/lib/gcc/${triple}/${dir}`, `/usr/libexec/gcc/${triple}/${dir}`].find((d) => resolveInRoot(rootHost, `${d}/cc1`).type === 'file');
      if (!execDir) continue;
      found.push({ triple, dir, execDir, major: dir.split('.')[0]!, hasCxx: resolveInRoot(rootHost, `${execDir}/cc1plus`).type === 'file' });
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

// The `--with-X=` options that set a gcc's default code generation, with the flag each becomes.
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

/** The image's gcc driver and the host's (`hostDriver`, below `hostRoot`), as files: their configure lines give the target defaults. */
export function driverDefaults(rootHost: string, image: ImageGcc, hostDriver: string, hostRoot: string): { flags: string[] } | { problem: string } {
  const imageDriver = [`/usr/bin/${image.triple}-gcc-${image.major}`, `/usr/bin/${image.triple}-gcc-${image.dir}`, `/usr/bin/gcc-${image.major}`, `/usr/bin/gcc-${image.dir}`, '/usr/bin/gcc']
    .map((p) => resolveInRoot(rootHost, p))
    .find((r) => r.type === 'file');
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
