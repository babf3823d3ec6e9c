// Whether and how to accelerate: the request, the host's cross gcc versions, the decision with its
// reason in words, and the compiler identity that goes into the wheel cache key.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import { checkDistccRequest } from './distcc.js';
import { PreconditionError } from '../core/errors.js';
import { driverDefaults, type ImageGcc, imageGcc } from './gcc.js';

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

/** A decision to accelerate (cross or distcc). */
export type Accelerated = Extract<AccelDecision, { kind: 'cross' | 'distcc' }>;

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
  if (!image) return fail('the image has no gcc (no cc1 in /usr/lib/gcc/*/* or /usr/libexec/gcc/*/*)', 'install gcc in the image, or let the build install it');
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
  const defaults = driverDefaults(rootHost, image, `/usr/bin/${host.triple}-gcc-${host.major}`, hostRoot);
  if ('problem' in defaults) return fail(defaults.problem, 'use --accel none (the image gcc, emulated)');
  const forced = host.major !== image.major;
  const distccHosts = req.distccHosts ?? [];
  const withFlags = defaults.flags.length ? `, with the image gcc's target defaults ${defaults.flags.join(' ')}` : '';
  const reason = forced
    ? `host cross gcc ${host.major} forced over the image's gcc ${image.major} (--accel-gcc)${withFlags}: objects may need a newer libgcc/libstdc++ than the board has; the wheel is verified against the image`
    : `host-native ${triple}-gcc-${host.major} for the image's gcc ${image.dir}${withFlags}${req.mode === 'distcc' ? `, compile jobs sent to distccd on ${distccHosts.join(' ')}` : ''}`;
  return { kind: req.mode === 'distcc' ? 'distcc' : 'cross', image, host, forced, reason, distccHosts, ccache: req.ccache ?? true, targetFlags: defaults.flags };
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

export function crossFullVersion(host: HostCross): string {
  // The gcc-cross directory's own files date the build of the compiler: enough to tell updates apart.
  try {
    const st = fs.statSync(path.join(host.gccDir, 'cc1'));
    return `${st.size}-${Math.floor(st.mtimeMs)}`;
  } catch {
    return 'unknown';
  }
}
