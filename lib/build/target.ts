// Building each target in the chroot: its pip prerequisites and commands, then each wheel it
// built verified, copied to --out and recorded; or its wheels from the cache.
import fs from 'node:fs';
import path from 'node:path';
import { StepError } from '../core/errors.js';
import { stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import { hashFile } from '../core/hash.js';
import { normalizeName, type TargetPlan } from '../targets/index.js';
import { isWheelFrontend } from '../targets/local.js';
import type { BuiltWith, ManifestWheel, WheelName } from '../wheel/index.js';
import { storeInCache, useHit } from './cache.js';
import { runCommand } from './host-python.js';
import type { Chroot } from './chroot.js';
import { rewriteOnHost } from './deflate.js';
import { zipEpoch } from './source-epoch.js';
import { targetTimer } from './space-guard.js';
import { openLog, putWheel, record } from './output.js';
import { buildReportInner, buildReqsInner, checkPins, parseUnmet, readBuildReport, unmetError, waivePins } from './requirements.js';
import type { BuildRun } from './run.js';
import { type BuildLimits, checked } from './step-error.js';
import { copyIntoTree, takeWheel } from './take.js';
import { builtWheels, sonamesOf, verify } from './verify.js';
import { slug, sourceDir } from './workspace.js';

/** Builds the i-th target of the plan (or takes its wheels from the cache). */
export async function buildTarget(run: BuildRun, chroot: Chroot, i: number): Promise<void> {
  const t = run.plan.targets[i]!;
  const log = openLog(run, `${slug(t)}.log`, `# imgbuild: ${t.id}\n`);
  if (run.hits.has(t)) {
    const files = useHit(run, t);
    for (const f of files) chroot.shipped.set(normalizeName(t.name), sonamesOf(f));
    await installForLater(run, chroot, i, files, log);
    return;
  }
  const t0 = performance.now();
  const { files: inTree, python } = await stage(run.ctx.emit, `build ${t.id}`, () => compile(run, chroot, t, log));
  // Taken out of the tree before any check runs code from them: what is verified is what ships.
  const built = inTree.map((f) => takeWheel(f, run.dirs.staged));
  const provided = [...t.needs.flatMap((n) => chroot.shipped.get(normalizeName(n)) ?? []), ...runtimeApt(t, chroot).flatMap((p) => chroot.runtimeLibs.get(p) ?? [])];
  const mine: ManifestWheel[] = [];
  for (const file of built) mine.push(await shipWheel(run, chroot, t, file, { log, provided, t0, python }));
  await storeInCache(run, t, built, mine);
  await installForLater(run, chroot, i, built, log);
}

// The target's wheels in its tree, and where its front end's Python ran when --accel full chose (undefined: as the session's).
async function compile(run: BuildRun, chroot: Chroot, t: TargetPlan, log: string): Promise<{ files: string[]; python?: string }> {
  const limits: BuildLimits = { cgroup: chroot.s.memory, jobs: run.plan.jobs, pids: chroot.s.pids, space: chroot.space, holder: chroot.s.ns };
  const pins = run.inputs.pip.offline ? await waivePins(run, chroot, t, log) : t.pip;
  if (pins.length > 0) {
    const r = await chroot.exec(['python3', '-m', 'pip', 'install', '--find-links', '/workspace/pip', ...pins], { log });
    const unmet = run.inputs.pip.offline && r.exitCode !== 0 ? await checkPins(chroot, pins, log) : [];
    if (unmet.length > 0) throw await unmetError(t.id, unmet, { exec: chroot.exec, buildRoot: chroot.buildRoot, log });
    await checked(r, { what: `pip install ${pins.join(' ')}`, log, hint: 'the build prerequisites could not be installed; see the log', target: t.id, limits });
  }
  const src = sourceDir(run, t);
  // Build requirements the front end installs go to the workspace, never into the image.
  const env = { SOURCE_DATE_EPOCH: String(epochOf(run, t)), ...t.env, IMGBUILD_BUILD_REQS: buildReqsInner(t), IMGBUILD_BUILD_REPORT: buildReportInner(t) };
  let python: string | undefined;
  const timer = t.timeout ? targetTimer(t.timeout.ms, chroot.s.rootHost, () => run.ctx.emit({ kind: 'warn', message: `${t.id}: timeout=${t.timeout!.text} reached: stopping its build` })) : undefined;
  try {
    for (const cmd of t.commands) {
      checkpoint('build:compile');
      const ran = await runCommand(run, chroot, t, cmd, { env, log });
      const r = ran.r;
      if (ran.python) python = ran.python;
      const unmet = isWheelFrontend(cmd) && r.exitCode === 3 ? parseUnmet(r.all) : undefined;
      if (unmet) throw await unmetError(t.id, unmet, { exec: chroot.exec, buildRoot: chroot.buildRoot, log });
      await checked(r, { what: cmd.join(' '), log, target: t.id, limits: { ...limits, ...(timer ? { timeout: { text: t.timeout!.text, timer } } : {}) } });
    }
  } finally {
    timer?.stop();
  }
  const wheels = builtWheels(src.host, t.wheelDir, t.id);
  if (wheels.length === 0) throw new StepError(`${t.id} built no wheel: nothing in ${t.wheelDir}/`, `see ${log}`);
  return { files: wheels, ...(python ? { python } : {}) };
}

// Verifies one built wheel, then copies it to --out and the build tree and records it.
async function shipWheel(run: BuildRun, chroot: Chroot, t: TargetPlan, file: string, o: { log: string; provided: string[]; t0: number; python?: string | undefined }): Promise<ManifestWheel> {
  const base = path.basename(file);
  // `file` is the staged copy; the import check in the chroot uses the tree's own (`inner`). It is
  // verified as built (stored, cheap to unpack under qemu) while the staged copy is rewritten
  // natively (deflated, its times and modes made reproducible).
  const rewriting = rewriteOnHost(file, o.log, { deflate: chroot.hostDeflate, epoch: epochOf(run, t) });
  let name: WheelName;
  try {
    const inner = path.posix.join(sourceDir(run, t).inner, t.wheelDir, base);
    name = await stage(run.ctx.emit, `verify ${base}`, () => verify(chroot.s, file, t, { inner, lowerRoot: chroot.lowerRoot, buildRoot: chroot.buildRoot, provided: o.provided, python: run.image.python, log: o.log, accel: chroot.accel, ...(run.req.testCommand ? { test: { command: run.req.testCommand, project: sourceDir(run, t).inner } } : {}) }));
  } catch (error) {
    await rewriting.abandon();
    throw error;
  }
  await rewriting.finish();
  const seconds = Math.round((performance.now() - o.t0) / 100) / 10;
  // Into the tree first: if a build step broke its wheels/ directory, nothing reaches --out.
  copyIntoTree(file, run.dirs.build, `/wheels/${base}`);
  putWheel(run, file);
  const entry: ManifestWheel = {
    file: base,
    sha256: await hashFile(file),
    size: fs.statSync(file).size,
    tags: { python: name.python, abi: name.abi, platform: name.platform },
    name: name.distribution,
    version: name.version,
    target: t.id,
    ...(t.version ? { targetVersion: t.version } : {}),
    source: run.fetched.get(t)!,
    env: t.env,
    commands: t.commands,
    image: run.manifest.image,
    compiler: chroot.compiler,
    accel: chroot.accelNote,
    ...withPython(o.python ?? chroot.pythonNote, chroot.native),
    seconds,
    sourceDateEpoch: epochOf(run, t),
    log: o.log,
    ...(runtimeApt(t, chroot).length ? { runtimeApt: runtimeApt(t, chroot) } : {}),
    ...(Object.keys(chroot.aptVersions).length ? { aptPackages: chroot.aptVersions } : {}),
    ...withReport(readBuildReport(run.dirs.build, t)),
    pipSources: run.inputs.pip,
  };
  record(run, entry);
  chroot.shipped.set(normalizeName(t.name), sonamesOf(file));
  chroot.shipped.set(normalizeName(name.distribution), sonamesOf(file));
  return entry;
}

// Later targets that need a target get its wheels installed (in the build layer, or the image with --persist).
async function installForLater(run: BuildRun, chroot: Chroot, i: number, files: string[], log: string): Promise<void> {
  const { targets } = run.plan;
  const t = targets[i]!;
  if (!targets.slice(i + 1).some((o) => o.needs.some((n) => normalizeName(n) === normalizeName(t.name)))) return;
  for (const file of files) {
    const inner = `/workspace/wheels/${path.basename(file)}`;
    await checked(await chroot.exec(['python3', '-m', 'pip', 'install', '--no-deps', '--no-index', '--force-reinstall', inner], { log }), { what: `pip install ${inner}`, log, target: t.id });
  }
}

// SOURCE_DATE_EPOCH: the user's (env=), else the source's (its commit's time, or newest file).
function epochOf(run: BuildRun, t: TargetPlan): number {
  const given = Number(t.env.SOURCE_DATE_EPOCH);
  return Number.isInteger(given) && given >= 0 ? Math.max(given, zipEpoch) : (run.fetched.get(t)?.epoch ?? zipEpoch);
}

// The board's Debian packages for this target: its runtime= ones and those that met its needs in this build.
function runtimeApt(t: TargetPlan, chroot: Chroot): string[] {
  return [...new Set([...(t.runtimeApt ?? []), ...(t.fromEnvironment ?? []).flatMap((n) => chroot.envNeeds.get(n)?.aptPackage ?? [])])];
}

function withReport(report: BuiltWith[] | undefined): { buildRequirements?: BuiltWith[] } {
  return report?.length ? { buildRequirements: report } : {};
}

// Where the target's Python ran, and what ran natively (python only when its build stayed on the host's).
function withPython(python: string | undefined, native: string[]): { python?: string; native?: string[] } {
  const ran = python?.startsWith('host ') ? native : native.filter((n) => !n.startsWith('python '));
  return { ...(python ? { python } : {}), ...(ran.length ? { native: ran } : {}) };
}
