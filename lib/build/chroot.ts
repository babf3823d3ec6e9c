// Preparing the build session's chroot: apt packages, the memory limit, compiler acceleration,
// the --with-wheel installs; and the one way build commands run in it.
import fs from 'node:fs';
import path from 'node:path';
import { type AccelDecision, startAccel } from '../accel/index.js';
import type { Context } from '../core/context.js';
import { stage } from '../core/events.js';
import { human } from '../core/units.js';
import type { Session, SessionOptions } from '../session/index.js';
import { normalizeName } from '../targets/index.js';
import type { CopiedWheel } from './fetch.js';
import { openLog } from './output.js';
import { chrootPipEnv, findLinksInner } from './pip-sources.js';
import { defaultMemoryLimit, installBytes } from './plan.js';
import type { BuildRun } from './run.js';
import { guardSpace, type SpaceGuard } from './space-guard.js';
import { checkEnvironmentNeeds, dependencyClosure, type EnvironmentNeed } from './needs.js';
import { aptForMissingPins, checkPins } from './requirements.js';
import { checked } from './step-error.js';
import type { Exec } from './types.js';
import { sonamesOf } from './verify.js';
import { checkSpace } from './workspace.js';

export type { Exec } from './types.js';

/** The prepared chroot the targets build in. */
export interface Chroot {
  s: Session;
  /** Runs a command with pip's and the compiler acceleration's env, its output to `log`. */
  exec: Exec;
  accel: AccelDecision;
  /** The front end writes wheels stored and the host deflates them (accelerated builds). */
  hostDeflate: boolean;
  /** The accel decision as the manifest says it. */
  accelNote: string;
  /** --accel full: the host Python the front end runs under (its path in the chroot, and the manifest's note). */
  python?: { inner: string; note: string };
  /** Where the front end's Python runs, for the manifest (with --accel full). */
  pythonNote?: string;
  /** --accel full: the programs the host runs for the image (the manifest's `native`). */
  native: string[];
  /** `cc --version`'s first line, for the manifest. */
  compiler: string | undefined;
  /** Sonames shipped by wheels each later target may link against, by normalized project name. */
  shipped: Map<string, string[]>;
  /** The apt packages installed for the build, with the versions dpkg has. */
  aptVersions: Record<string, string>;
  /** Library file names of each runtime= package and what it depends on (installed in the build layer; the board has them). */
  runtimeLibs: Map<string, string[]>;
  /** Needs the build environment met (TargetPlan.fromEnvironment), by name. */
  envNeeds: Map<string, EnvironmentNeed>;
  /** The image's own root and the chroot's root (with the build layer), as the host sees them. */
  lowerRoot: string;
  buildRoot: string;
  /** Stops the build when the workspace's filesystem runs low (guardSpace). */
  space: SpaceGuard;
}

export function sessionOptions(run: BuildRun): SessionOptions {
  const { req } = run;
  return { image: req.image, mode: req.persist ? 'rw' : 'overlay', verb: 'build', attach: req.attach, allowBlockDevice: req.allowBlockDevice, privileged: req.privileged === true, ...(req.python ? { python: req.python } : {}), workspace: run.dirs.build, ...(req.persist ? {} : { upper: run.dirs.upper }) };
}

export async function prepareChroot(run: BuildRun, s: Session, supplied: CopiedWheel[]): Promise<Chroot> {
  const { ctx, req } = run;
  // From the first write into the workspace (apt in the build layer) to the end of the session.
  const space = guardSpace(run.dirs.build, s.rootHost, { onTrip: (message) => ctx.emit({ kind: 'warn', message }) });
  s.defer('stop watching the workspace\'s free space', () => space.stop());
  const setupLog = openLog(run, 'setup.log', '');
  if (req.persist) checkSpace(s.file('/'), installBytes(run.plan), 'the image');
  await bindFindLinks(run, s);
  const apt = await installApt(run, s, setupLog);
  const envNeeds = await checkEnvironmentNeeds(run, chrootExec(ctx, s, {}), apt, setupLog);
  await limitMemory(run, s);
  await limitPids(run, s);
  // After apt: the binds must never be up while dpkg runs.
  const accel = await stage(ctx.emit, 'set up compiler acceleration', () => startAccel(ctx, s, req.accel ?? { mode: 'auto' }, run.image.facts.python ? { python: run.image.facts.python } : {}));
  const py = accel.handle?.python;
  const python = py?.kind === 'host' && py.inner ? { inner: py.inner, note: `host Python ${py.python.version} (--accel full)` } : undefined;
  // Accelerated builds move deflate out of the emulator too: the front end writes wheels
  // stored, and they are deflated here, natively (seconds per megabyte under qemu).
  const hostDeflate = accel.decision.kind !== 'none';
  const accelEnv = hostDeflate ? { ...accel.env, IMGBUILD_STORE_WHEELS: '1' } : accel.env;
  const accelNote = accel.decision.kind === 'none' ? accel.decision.reason : `${accel.decision.kind}: ${accel.decision.reason}`;
  const exec = chrootExec(ctx, s, { ...chrootPipEnv(run.inputs.pip), ...accelEnv });
  const compiler = await compilerVersion(s, accelEnv);
  for (const w of supplied) {
    await stage(ctx.emit, `install --with-wheel ${path.basename(w.path)}`, async () => {
      await checked(await exec(['python3', '-m', 'pip', 'install', '--no-deps', '--no-index', w.inner], { log: setupLog }), { what: `pip install ${w.inner}`, log: setupLog, hint: 'is the wheel for this image (python and platform tags)?' });
    });
  }
  const shipped = new Map(supplied.map((w) => [normalizeName(w.name.distribution), sonamesOf(w.path)]));
  const runtimeLibs = await runtimeLibraries(s, [...run.plan.targets.flatMap((t) => t.runtimeApt ?? []), ...[...envNeeds.values()].flatMap((n) => n.aptPackage ?? [])], setupLog);
  const aptVersions = await installedVersions(s, apt);
  return { s, exec, accel: accel.decision, hostDeflate, accelNote, ...(python ? { python } : {}), ...(py ? { pythonNote: python?.note ?? py.reason } : {}), native: accel.handle?.native ?? [], compiler, shipped, runtimeLibs, envNeeds, aptVersions, lowerRoot: s.ns.hostPath(s.imageRoot), buildRoot: s.rootHost, space };
}

// pip's cache lives in the workspace: never in the image (--persist), and reused within a run.
const pipEnv = { PIP_CACHE_DIR: '/workspace/.cache/pip', PIP_BREAK_SYSTEM_PACKAGES: '1', PIP_ROOT_USER_ACTION: 'ignore', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };

function chrootExec(ctx: Context, s: Session, env: Record<string, string>): Exec {
  return (argv, o) => s.exec(argv, { env: { ...pipEnv, ...env, ...o.env }, cwd: o.cwd, logFile: o.log, onLine: (line) => ctx.emit({ kind: 'output', line }), group: true, allowFailure: true });
}

// --find-links directories, read-only at /workspace/.imgbuild/find-links/N, and the targets' own
// host directories (a vendor SDK: qnn_home=), read-only where each recipe wants it, for the session.
async function bindFindLinks(run: BuildRun, s: Session): Promise<void> {
  const binds = [...run.inputs.pip.findLinks.map((d, i) => ({ source: d, inner: findLinksInner(i) })), ...run.plan.targets.flatMap((t) => t.binds ?? [])];
  if (binds.length === 0) return;
  for (const b of binds) fs.mkdirSync(path.join(run.dirs.build, b.inner.slice('/workspace/'.length)), { recursive: true });
  await s.bindGroup({ binds, undo: 'unbind the --find-links and recipe directories', what: 'the --find-links and recipe directories', noun: 'read-only bind' });
}

// In the throwaway build layer, Python packages are not byte-compiled by their postinst: py3compile
// under qemu takes minutes for sympy or torch, and Python compiles what it imports anyway. The
// diversion lives in the layer (dpkg's record of it too); --persist installs into the image compile as usual.
const skipByteCompile = [
  'set -e',
  '[ -e /usr/bin/py3compile ] || exit 0',
  'dpkg-divert --quiet --local --rename --divert /usr/bin/py3compile.imgbuild --add /usr/bin/py3compile',
  'ln -sf /bin/true /usr/bin/py3compile',
].join('\n');

// The plan's apt packages and, offline, those that provide the pip requirements the image lacks; the packages installed.
async function installApt(run: BuildRun, s: Session, log: string): Promise<string[]> {
  // Offline, the targets' pip requirements (a recipe's numpy, protobuf) come from the image's apt.
  const pins = run.inputs.pip.offline ? [...new Set(run.plan.targets.flatMap((t) => [...t.pip, ...(t.fromEnvironment ?? [])]))] : [];
  if (run.plan.apt.length === 0 && pins.length === 0) return [];
  // Before compiler acceleration is set up: apt runs with pip's env only.
  const exec = chrootExec(run.ctx, s, {});
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const where = run.req.persist ? 'image' : 'build layer';
  let updated = false;
  const update = async () => {
    if (!updated) await checked(await exec(['apt-get', 'update'], { env, log }), { what: 'apt-get update', log, hint: 'check the image\'s /etc/apt/sources.list and the network' });
    updated = true;
  };
  let fromApt: string[] = [];
  if (pins.length > 0) {
    fromApt = await stage(run.ctx.emit, 'offline: look for the Python requirements the image lacks in its apt', async () => {
      if ((await checkPins({ exec }, pins, log)).every((u) => u.installed !== null)) return [];
      await update();
      const found = await aptForMissingPins(exec, pins, log);
      if (found.apt.length > 0) run.ctx.emit({ kind: 'notice', message: `offline: ${found.missing.join(', ')} not in the image; installing ${found.apt.join(' ')} from its apt into the ${where}` });
      return found.apt.filter((p) => !run.plan.apt.includes(p));
    });
  }
  const apt = [...run.plan.apt, ...fromApt];
  if (apt.length === 0) return [];
  await stage(run.ctx.emit, `install ${apt.length} apt package(s) in the ${where}`, async () => {
    await update();
    if (!run.req.persist) await checked(await exec(['sh', '-c', skipByteCompile], { log }), { what: 'divert py3compile in the build layer', log });
    await checked(await exec(['apt-get', 'install', '-y', '--no-install-recommends', ...apt], { env, log }), { what: `apt-get install ${apt.join(' ')}`, log, hint: 'a package name may not exist in this release' });
  });
  return apt;
}

// What dpkg has of the plan's apt packages, for the manifest.
async function installedVersions(s: Session, pkgs: string[]): Promise<Record<string, string>> {
  if (pkgs.length === 0) return {};
  const r = await s.exec(['dpkg-query', '-W', '-f', '${Package} ${Version}\\n', ...pkgs], { allowFailure: true, quiet: true });
  return Object.fromEntries(r.stdout.split('\n').map((l) => l.trim().split(' ')).filter((f): f is [string, string] => f.length === 2 && !!f[1]));
}

// dpkg's file lists of the runtime packages and of every package they depend on: the libraries
// in them count as the board's (a board with python3-torch has libtorch1.13 too).
async function runtimeLibraries(s: Session, given: string[], log: string): Promise<Map<string, string[]>> {
  const pkgs = [...new Set(given)];
  const libs = new Map<string, string[]>();
  if (pkgs.length === 0) return libs;
  const status = await s.exec(['dpkg-query', '-W', '-f', '${Package}\t${Depends}, ${Pre-Depends}\n'], { allowFailure: true, quiet: true });
  for (const pkg of pkgs) {
    const closure = dependencyClosure(status.stdout, [pkg]);
    const r = await s.exec(['dpkg-query', '-L', ...closure], { allowFailure: true, quiet: true });
    await checked({ exitCode: closure.includes(pkg) ? r.exitCode : 1, all: r.all }, { what: `dpkg-query -L ${pkg}`, log, hint: `runtime=${pkg} names a package the build layer does not have installed` });
    libs.set(pkg, [...new Set(r.stdout.split('\n').filter((f) => /\/lib[^/]*\.so(\.[\d.]+)?$/.test(f.trim())).map((f) => path.posix.basename(f.trim())))]);
  }
  return libs;
}

async function limitMemory(run: BuildRun, s: Session): Promise<void> {
  const limit = run.req.memoryLimit ?? defaultMemoryLimit();
  if (limit > 0) {
    const lim = await s.limitMemory(limit);
    if (lim.ok) run.ctx.emit({ kind: 'info', message: `build commands run under a ${human(limit)} memory limit (cgroup v${lim.cgroup.version})` });
    else run.ctx.emit({ kind: 'warn', message: `no memory limit for the build: ${lim.reason}; an out-of-memory build may hit other processes on this host` });
  }
}

/** Enough for any compile (make -j, ninja, gcc's own processes, each a qemu under emulation); a fork bomb stops here. */
export const defaultPidsLimit = 2048;

async function limitPids(run: BuildRun, s: Session): Promise<void> {
  const max = run.req.pidsLimit ?? defaultPidsLimit;
  if (max <= 0) return;
  const lim = await s.limitPids(max);
  if (lim.ok) run.ctx.emit({ kind: 'info', message: `build commands run under a limit of ${max} processes (--pids-limit)` });
  else run.ctx.emit({ kind: 'warn', message: `no process limit for the build: ${lim.reason}; a fork bomb in build code could exhaust this host's processes` });
}

async function compilerVersion(s: Session, env: Record<string, string>): Promise<string | undefined> {
  const r = await s.exec(['cc', '--version'], { allowFailure: true, quiet: true, env });
  return r.exitCode === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}
