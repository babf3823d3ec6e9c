// Whether and how to accelerate: the request, the host's cross gcc versions, the decision with its
// reason in words, and the compiler identity that goes into the wheel cache key.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import { checkDistccRequest } from './distcc.js';
import { PreconditionError } from '../core/errors.js';
import { driverDefaults, type ImageGcc, imageGcc } from './gcc.js';

/** `full`: as `cross`, and the build's front end and backend under a host Python of the image's version (python.ts). */
export type AccelMode = 'auto' | 'cross' | 'full' | 'none' | 'distcc';
export const accelModes: readonly AccelMode[] = ['auto', 'cross', 'full', 'none', 'distcc'];

export interface AccelRequest {
  mode: AccelMode;
  /** --accel-gcc N: use the host's cross gcc N even when the image's gcc is another version. */
  gcc?: string;
  /** distccd servers (DISTCC_HOSTS syntax per entry). */
  distccHosts?: string[];
  /** Use the host's ccache for the accelerated compiler (default true). */
  ccache?: boolean;
  /**
   * Where the cross gcc comes from: `auto` (the host's, else a toolchain tree of the image's
   * release, made when missing), `host` (the host's only) or `tree` (a toolchain tree only).
   */
  toolchain?: ToolchainChoice;
  /** An apt archive for the toolchain tree, where the image's own sources do not serve the host's architecture. */
  toolchainMirror?: string;
}

export type ToolchainChoice = 'auto' | 'host' | 'tree';
export const toolchainChoices: readonly ToolchainChoice[] = ['auto', 'host', 'tree'];

/**
 * A Debian cross toolchain for an arch, the host's own or a toolchain tree's (toolchain.ts):
 * ROOT/usr/bin/TRIPLE-gcc-N, and cc1 in ROOT/usr/lib/gcc-cross/TRIPLE/N (ROOT/usr/libexec/... from Debian 13).
 */
export interface HostCross {
  triple: string;
  major: string;
  /** Where the toolchain's files are: '/' for the host's packages, else a toolchain tree. */
  root: string;
  /** The toolchain tree's name (RELEASE-ARCH-gccN) when it is one. */
  tree?: string;
  /** cc1's directory, as a host path (below root). */
  gccDir: string;
  hasCxx: boolean;
}

/** The gcc-cross directories of a toolchain root, where cc1 may be (Debian 13 moved it to libexec). */
function crossDirs(root: string, triple: string): string[] {
  return ['usr/lib/gcc-cross', 'usr/libexec/gcc-cross'].map((d) => path.join(root, d, triple));
}

export type AccelDecision =
  /** `missing`: no cross gcc of this version was found, which a toolchain tree of the image's release would give. */
  | { kind: 'none'; reason: string; missing?: { triple: string; major: string } }
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
      /** --accel full: the front end and backend run under a host Python when one of the image's version is there. */
      full: boolean;
    };

/** A decision to accelerate (cross or distcc). */
export type Accelerated = Extract<AccelDecision, { kind: 'cross' | 'distcc' }>;

/** Major versions of the cross gcc for this arch under a root (Debian packages gcc-N-TRIPLE), newest first. */
export function hostCrossVersions(arch: Arch, hostRoot = '/'): string[] {
  const triple = archTable[arch].triplet;
  const found = new Set<string>();
  for (const dir of crossDirs(hostRoot, triple)) {
    let names: string[] = [];
    try {
      names = fs.readdirSync(dir);
    } catch {
      continue;
    }
    for (const v of names) if (fs.existsSync(path.join(dir, v, 'cc1')) && fs.existsSync(path.join(hostRoot, 'usr/bin', `${triple}-gcc-${v}`))) found.add(v);
  }
  return [...found].sort((a, b) => Number(b) - Number(a));
}

export function hostCross(arch: Arch, major: string, hostRoot = '/'): HostCross | undefined {
  const triple = archTable[arch].triplet;
  const gccDir = crossDirs(hostRoot, triple).map((d) => path.join(d, major)).find((d) => fs.existsSync(path.join(d, 'cc1')));
  if (!gccDir || !hostCrossVersions(arch, hostRoot).includes(major)) return undefined;
  const hasCxx = fs.existsSync(path.join(gccDir, 'cc1plus')) && fs.existsSync(path.join(hostRoot, 'usr/bin', `${triple}-g++-${major}`));
  return { triple, major, root: hostRoot, gccDir, hasCxx };
}

/**
 * Whether and how to accelerate, with the reason in words. `auto` falls back to emulation
 * (saying why); `cross` and `distcc` fail instead. --accel-gcc forces a host gcc version.
 */
export function decideAccel(req: AccelRequest, arch: Arch, rootHost: string, hostRoot = '/', trees: readonly string[] = []): AccelDecision {
  checkDistccRequest(req.mode, req.distccHosts);
  if (req.mode === 'none') return { kind: 'none', reason: 'pure emulation (--accel none)' };
  const explicit = req.mode !== 'auto';
  const fail = (why: string, hint: string, missing?: { triple: string; major: string }): AccelDecision => {
    if (explicit) throw new PreconditionError(`--accel ${req.mode}: ${why}`, hint);
    return { kind: 'none', reason: `emulated compiler: ${why}`, ...(missing ? { missing } : {}) };
  };
  if (!needsEmulation(arch)) return { kind: 'none', reason: `the image (${arch}) runs natively: nothing to accelerate` };
  const image = imageGcc(rootHost, arch);
  if (!image) return fail('the image has no gcc (no cc1 in /usr/lib/gcc/*/* or /usr/libexec/gcc/*/*)', 'install gcc in the image, or let the build install it');
  const triple = archTable[arch].triplet;
  const choice = req.toolchain ?? 'auto';
  const major = req.gcc ?? image.major;
  // --accel-gcc names a host gcc; a tree is always of the image's own version.
  const roots = [...(choice !== 'tree' ? [hostRoot] : []), ...(choice !== 'host' && !req.gcc ? trees : [])];
  const found = roots.flatMap((r) => {
    const h = hostCross(arch, major, r);
    return h ? [r === hostRoot ? h : { ...h, tree: path.basename(r) }] : [];
  });
  const host = found.find((h) => !image.hasCxx || h.hasCxx) ?? found[0];
  if (!host) {
    const versions = hostCrossVersions(arch, hostRoot);
    const have = versions.length ? `the host has ${versions.map((v) => `gcc ${v}`).join(', ')} for ${triple}` : `the host has no ${triple} cross gcc`;
    const treeHint = choice === 'host' ? '' : '; without --toolchain host, imgbuild makes a toolchain tree of the image\'s release';
    return fail(
      `no ${choice === 'tree' ? 'toolchain tree with a' : 'host'} cross gcc ${major} for ${triple} (the image's gcc is ${image.major}; ${have})`,
      `install it on the host (apt-get install gcc-${major}-${triple} g++-${major}-${triple}) if your distribution has it${treeHint}${req.gcc ? '' : '; --accel-gcc N forces another host version (the wheel is still verified against the image)'}`,
      req.gcc ? undefined : { triple, major },
    );
  }
  if (image.hasCxx && !host.hasCxx) {
    return fail(`${host.tree ? `the toolchain tree ${host.root}` : 'the host'} has gcc-${major}-${triple} but not g++-${major}-${triple}`, `apt-get install g++-${major}-${triple}`);
  }
  const defaults = driverDefaults(rootHost, image, `/usr/bin/${host.triple}-gcc-${host.major}`, host.root);
  if ('problem' in defaults) return fail(defaults.problem, 'use --accel none (the image gcc, emulated)');
  const forced = host.major !== image.major;
  const distccHosts = req.distccHosts ?? [];
  const withFlags = defaults.flags.length ? `, with the image gcc's target defaults ${defaults.flags.join(' ')}` : '';
  const where = host.tree ? `native (toolchain tree ${host.tree})` : 'host-native';
  const reason = forced
    ? `host cross gcc ${host.major} forced over the image's gcc ${image.major} (--accel-gcc)${withFlags}: objects may need a newer libgcc/libstdc++ than the board has; the wheel is verified against the image`
    : `${where} ${triple}-gcc-${host.major} for the image's gcc ${image.dir}${withFlags}${req.mode === 'distcc' ? `, compile jobs sent to distccd on ${distccHosts.join(' ')}` : ''}`;
  return { kind: req.mode === 'distcc' ? 'distcc' : 'cross', image, host, forced, reason, distccHosts, ccache: req.ccache ?? true, targetFlags: defaults.flags, full: req.mode === 'full' };
}

/**
 * The compiler part of a wheel cache key: emulated (the image's own gcc, which the image's hash
 * covers) or the host cross gcc (its build, and which image gcc directory it relocates into).
 */
export function accelIdentity(req: AccelRequest, decision: AccelDecision | undefined): string {
  if (!decision) return `undecided:${req.mode}:${req.gcc ?? ''}`;
  if (decision.kind === 'none') return 'emulated';
  const tree = decision.host.tree ? `tree:${decision.host.tree}:` : '';
  return `cross:${decision.full ? 'full:' : ''}${tree}${decision.host.triple}-gcc-${decision.host.major}:${crossFullVersion(decision.host)}:${decision.image.triple}/${decision.image.dir}:${decision.targetFlags.join(' ')}`;
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
