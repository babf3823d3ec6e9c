// Wheel file names and tags (PEP 427, PEP 425): parsing a name, the tags a build for an image
// carries, why pip on the image would refuse a wheel's tags, and symbol-version ordering.
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { UsageError } from '../core/errors.js';

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

/** CPython's ABI tag: 3.7 and older default builds carry the pymalloc 'm' flag. */
export function pythonAbi(version: string): string {
  const [maj, min] = version.split('.').map(Number) as [number, number];
  const nodot = `${maj}${min}`;
  return maj === 3 && min < 8 ? `cp${nodot}m` : `cp${nodot}`;
}

/** The full tag triple a build for this Python and arch gets: "cp311-cp311-linux_aarch64". */
export function wheelTag(pythonVersion: string, arch: Arch, machine = archTable[arch].wheelMachine): string {
  const nodot = pythonVersion.replace('.', '');
  return `cp${nodot}-${pythonAbi(pythonVersion)}-linux_${machine}`;
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
// The glibc each legacy manylinux tag stands for (PEP 600 spells the rest manylinux_X_Y).
const legacyManylinux: Record<string, string> = { manylinux1: '2.5', manylinux2010: '2.12', manylinux2014: '2.17' };

/** Pure: the glibc a manylinux platform tag needs and its machine ("manylinux_2_28_aarch64" -> 2.28, aarch64). */
export function manylinuxGlibc(platform: string): { glibc: string; machine: string } | undefined {
  const m = /^(manylinux1|manylinux2010|manylinux2014|manylinux_(\d+)_(\d+))_(.+)$/.exec(platform);
  if (!m) return undefined;
  return { glibc: m[2] !== undefined ? `${m[2]}.${m[3]}` : legacyManylinux[m[1]!]!, machine: m[4]! };
}

export function tagProblems(w: WheelName, image: { python: string; arch: Arch; machine?: string; glibc?: string }): string[] {
  const problems: string[] = [];
  const machine = image.machine ?? archTable[image.arch].wheelMachine;
  const platforms = `linux_${machine}, manylinux*_${machine} or any`;
  const platformOk = (p: string) => p === 'any' || p === `linux_${machine}` || manylinuxGlibc(p)?.machine === machine;
  // A manylinux tag promises only what its glibc has: one newer than the image's does not load there.
  const glibcOk = (p: string) => {
    const need = manylinuxGlibc(p);
    return !need || !image.glibc || compareVersions(need.glibc, image.glibc) <= 0;
  };
  if (w.platform.some(platformOk) && !w.platform.some((p) => platformOk(p) && glibcOk(p))) {
    const needs = w.platform.filter(platformOk).map((p) => `${p} needs glibc ${manylinuxGlibc(p)!.glibc}`);
    problems.push(`${w.file} is for a newer glibc than the image's ${image.glibc} (${needs.join('; ')})`);
  }
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
