// The main job: build image-matched wheels. Everything that can go wrong with the input is
// checked before anything is mounted; sources are fetched on the host; the build runs in the
// image's chroot over a throwaway layer in the workspace (or in the image with --persist); every
// wheel is verified against the image as the user has it before it is reported.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type AccelDecision, type AccelRequest, accelIdentity, decideAccel, startAccel } from '../accel/index.js';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import type { AttachStrategy } from '../host/attach.js';
import type { Context } from '../core/context.js';
import { PreconditionError, StepError, UsageError, errorMessage, tailLines } from '../core/errors.js';
import { stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import { readElfDynamic } from '../parse/elf.js';
import { hashFile } from '../core/hash.js';
import { holdLock } from '../host/lock.js';
import { safeRemoveTree } from '../host/safe-remove.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { MemoryCgroup } from '../host/cgroup.js';
import { type ImageFacts, type Session, type SessionMode, sessionFacts, withSession } from '../session/index.js';
import { checkProjectPath, declaredName, fetchSource, type FetchedSource, prefetchPip } from './sources.js';
import { parseTargetArg, type TargetArg } from '../targets/spec.js';
import { isWheelFrontend, wheelFrontend, wheelFrontendSource } from '../targets/local.js';
import { cmakeForRelease, normalizeName, orderPlans, pairingWarnings, planTarget, type TargetPlan } from '../targets/index.js';
import { GiB, human, MiB } from '../core/units.js';
import {
  deflateStored, findLibrary, imageIdentity, keyJobs, libraryDirs, lookupWheels, type Manifest, type ManifestImage, type ManifestWheel, parseWheelName,
  sourceFingerprint, storeWheels, verifyWheel, wheelCacheKey, wheelElves, type WheelLookup, type WheelName, type WheelReport, writeManifest,
} from '../wheel/index.js';

export interface BuildRequest {
  image: string;
  /** --target values: SPEC[,KEY=VALUE...]. */
  targets: string[];
  /** --out (default ./dist). */
  out: string;
  /** --workspace; default: a directory under the cache, emptied at the next run. */
  workspace?: string;
  jobs: number | 'auto';
  /** --source NAME=PATH. */
  sources: string[];
  /** --with-wheel PATH. */
  withWheels: string[];
  persist: boolean;
  dryRun: boolean;
  /** --accel and friends (default: auto). */
  accel?: AccelRequest;
  /** Memory limit for the build's commands in bytes; 0: none; default: what the host can spare. */
  memoryLimit?: number;
  /** Answer from the wheel cache when every input matches an earlier verified build (default true). */
  wheelCache?: boolean;
  attach?: AttachStrategy | 'auto';
  allowBlockDevice?: boolean;
  /** Relative paths are resolved against this (default: process.cwd()). */
  cwd?: string;
}

/** One host step of the build session and its undo, for --dry-run. */
export interface PlannedStep {
  step: string;
  undo: string;
}

export interface BuildPlan {
  image: string;
  mode: 'overlay' | 'persist';
  facts: Pick<ImageFacts, 'arch' | 'os' | 'python' | 'glibc' | 'wheelTag' | 'attach'>;
  jobs: number;
  /** The compiler acceleration the build will use, and why (decided again after apt installs). */
  accel: string;
  workspace: string;
  out: string;
  /** apt packages installed in the chroot before building, with the reason for each added one. */
  apt: string[];
  aptReasons: string[];
  hostSteps: PlannedStep[];
  targets: TargetPlan[];
  withWheels: { path: string; name: string; version: string }[];
  warnings: string[];
}

export interface BuildResult {
  plan: BuildPlan;
  manifest?: Manifest;
}

interface Prepared {
  args: TargetArg[];
  sources: Map<string, string>;
  wheels: { path: string; name: WheelName }[];
  out: string;
  workspace: string;
  defaultWorkspace: boolean;
}

/** Build (or with dryRun, plan) the requested targets. */
export async function build(ctx: Context, req: BuildRequest): Promise<BuildResult> {
  const prep = prepare(ctx, req);
  const image = await readImage(ctx, req, prep.wheels);
  const plan = makePlan(ctx, req, prep, image);
  for (const w of plan.warnings) ctx.emit({ kind: 'warn', message: w });
  if (req.dryRun) return { plan };

  checkSpace(plan.workspace, workspaceBytes(plan), 'the workspace');
  fs.mkdirSync(prep.workspace, { recursive: true });
  const lock = await holdLock(ctx, path.join(prep.workspace, '.imgbuild.lock'), `workspace ${prep.workspace}`);
  let ok = false;
  try {
    const manifest = await runBuild(ctx, req, prep, plan, image);
    ok = true;
    return { plan, manifest };
  } finally {
    await lock.release();
    if (ok && prep.defaultWorkspace) clearWorkspace(prep.workspace);
    else if (!ok) ctx.emit({ kind: 'info', message: `the build tree stays in ${prep.workspace} until the next build` });
  }
}

// ---------------------------------------------------------------------------------------------
// Before anything is mounted

function prepare(ctx: Context, req: BuildRequest): Prepared {
  const cwd = req.cwd ?? process.cwd();
  if (req.targets.length === 0) throw new UsageError('no --target given', 'e.g. --target torch@1.1.0 or --target local:./myproject; `imgbuild targets` lists the recipes');
  if (req.jobs !== 'auto' && (!Number.isInteger(req.jobs) || req.jobs < 1)) throw new UsageError(`--jobs ${req.jobs} is not a positive integer or auto`);
  const args = req.targets.map((t) => parseTargetArg(t, cwd));
  // A project directory says its own name: needs= of other targets and the import test use it.
  for (const a of args) {
    if (a.spec.kind === 'local' && a.options.name === undefined && isDirectory(a.spec.path)) {
      const name = declaredName(a.spec.path);
      if (name) a.options.name = name;
    }
  }

  // Plan once with stand-in facts: unknown recipes, versions and options fail here, before the image is read.
  const draft = args.map((a) => planTarget(a.spec, { jobs: 1, python: '3.11', arch: 'aarch64', recipeOptions: a.options }));

  const sources = new Map<string, string>();
  for (const s of req.sources) {
    const m = /^([^=]+)=(.+)$/.exec(s);
    if (!m) throw new UsageError(`--source ${s} is not NAME=PATH`, 'e.g. --source torch=/src/pytorch');
    const name = normalizeName(m[1]!.trim());
    const target = draft.find((p) => normalizeName(p.name) === name);
    if (!target) throw new UsageError(`--source ${m[1]}: no target called ${m[1]}`, `targets: ${draft.map((p) => p.name).join(', ')}`);
    const p = path.resolve(cwd, m[2]!);
    checkProjectPath(p, `--source ${m[1]}`);
    if (sources.has(name)) throw new UsageError(`--source ${m[1]} given twice`);
    sources.set(name, p);
  }
  for (const p of draft) if (p.source.kind === 'path' && !sources.has(normalizeName(p.name))) checkProjectPath(p.source.path, p.id);
  for (const p of draft) {
    if (p.source.kind === 'git' && !sources.has(normalizeName(p.name)) && !p.id.startsWith('git:')) {
      ctx.emit({ kind: 'info', message: `${p.id}: source from ${p.source.url} at ${p.source.ref} (use --source ${p.name}=PATH for a local checkout)` });
    }
  }

  const wheels = req.withWheels.map((w) => {
    const p = path.resolve(cwd, w);
    if (!fs.existsSync(p) || !fs.statSync(p).isFile()) throw new PreconditionError(`--with-wheel ${w}: no such file`, 'give the path of a .whl file');
    return { path: p, name: parseWheelName(p) };
  });

  // Unmet needs, cycles and duplicates are usage errors too: find them before the image is read.
  orderPlans(draft, wheels.map((w) => w.name.distribution));

  const out = path.resolve(cwd, req.out);
  if (!req.dryRun) checkWritable(out, '--out');
  const workspace = req.workspace ? path.resolve(cwd, req.workspace) : defaultWorkspace(ctx.cacheDir, path.resolve(cwd, req.image));
  if (req.workspace) {
    if (fs.existsSync(workspace) && !fs.statSync(workspace).isDirectory()) throw new PreconditionError(`--workspace ${workspace} is not a directory`);
    if (!req.dryRun) checkWritable(workspace, '--workspace');
  }
  if (/[,:\\\s]/.test(workspace)) throw new PreconditionError(`workspace ${workspace} has a comma, colon, backslash or space`, 'the build layer lives there and overlayfs cannot take such paths: choose a plain one');
  return { args, sources, wheels, out, workspace, defaultWorkspace: !req.workspace };
}

/** One default workspace per image path, so builds for two images can run at once. */
export function defaultWorkspace(cacheDir: string, image: string): string {
  const base = path.basename(image).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40) || 'image';
  const hash = crypto.createHash('sha256').update(image).digest('hex').slice(0, 10);
  return path.join(cacheDir, 'work', `${base}-${hash}`);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

/** Proves `dir` can be made and written, without making it (bad input changes nothing). */
function checkWritable(dir: string, what: string): void {
  let probe = dir;
  while (!fs.existsSync(probe)) {
    const up = path.dirname(probe);
    if (up === probe) break;
    probe = up;
  }
  const fail = (why: string) => new PreconditionError(`${what} ${dir} is not writable: ${why}`, `choose a directory you can write to with ${what} DIR`);
  if (!fs.statSync(probe).isDirectory()) throw fail(`${probe} is not a directory`);
  try {
    fs.accessSync(probe, fs.constants.W_OK);
  } catch (error) {
    throw fail(errorMessage(error));
  }
}

interface ImageInfo {
  facts: ImageFacts;
  python: string;
  hasPip: boolean;
  hasCc: boolean;
  hasCxx: boolean;
  /** The accel decision for the image as it is (undefined: it has no gcc yet; decided after apt). */
  accel?: AccelDecision;
}

/** Facts the plan needs, from a read-only session (read-only loop, ro,noload mounts: nothing changes). */
async function readImage(ctx: Context, req: BuildRequest, supplied: Prepared['wheels'] = []): Promise<ImageInfo> {
  return withSession(ctx, { image: req.image, mode: 'inspect', verb: 'build (read image)', attach: req.attach, allowBlockDevice: req.allowBlockDevice }, async (s) => {
    const facts = sessionFacts(s);
    if (!facts.python) {
      throw new PreconditionError(`${req.image} has no python3 (/usr/bin/python3)`, 'wheels are built with and for the image\'s own Python: install python3 in the image first (imgbuild shell IMAGE --rw)');
    }
    const root = s.ns.hostPath(s.root);
    const exists = (inner: string) => resolveInRoot(root, inner).type === 'file';
    const v = facts.python.version;
    const pipDirs = ['/usr/lib/python3/dist-packages', `/usr/local/lib/python${v}/dist-packages`, `/usr/lib/python${v}/site-packages`, `/usr/local/lib/python${v}/site-packages`];
    checkSupplied(supplied, root, s.arch, v);
    // An explicit --accel that cannot work fails here, before anything is changed.
    const accel = resolveInRoot(root, '/usr/lib/gcc').type === 'dir' ? decideAccel(req.accel ?? { mode: 'auto' }, s.arch, root) : undefined;
    return {
      accel,
      facts,
      python: v,
      hasPip: pipDirs.some((d) => exists(`${d}/pip/__init__.py`)),
      hasCc: exists('/usr/bin/gcc') || exists('/usr/bin/cc'),
      hasCxx: exists('/usr/bin/g++') || exists('/usr/bin/c++'),
    };
  });
}

/**
 * --with-wheel wheels get the checks built wheels get (tags, machines, libraries, symbol
 * versions) against the image, before anything is built on them: what the targets build against
 * them would not load on the board either.
 */
function checkSupplied(supplied: Prepared['wheels'], root: string, arch: Arch, python: string): void {
  for (const w of supplied) {
    const provided = supplied.filter((o) => o !== w).flatMap((o) => sonamesOf(o.path));
    const report = verifyWheel(w.path, { rootHost: root, arch, python, provided });
    if (report.problems.length > 0) {
      throw new PreconditionError(
        `--with-wheel ${w.path} does not fit the image:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
        'give a wheel built for this image (imgbuild builds one with --target), or install what it needs into the image first',
      );
    }
  }
}

function makePlan(ctx: Context, req: BuildRequest, prep: Prepared, image: ImageInfo): BuildPlan {
  const { facts } = image;
  const base = { python: image.python, arch: facts.arch, aptCmake: cmakeForRelease(facts.os.VERSION_CODENAME) };
  let plans = prep.args.map((a) => planTarget(a.spec, { ...base, jobs: keyJobs, recipeOptions: a.options }));
  const forKey = new Map(plans.map((p) => [p.id, { env: p.env, commands: p.commands }]));
  const jobs = req.jobs === 'auto' ? autoJobs(plans) : req.jobs;
  plans = prep.args.map((a) => planTarget(a.spec, { ...base, jobs, recipeOptions: a.options }));
  plans = plans.map((p) => {
    const local = prep.sources.get(normalizeName(p.name));
    return local ? { ...p, source: { kind: 'path', path: local }, notes: [...p.notes, `source: ${local} (--source)`] } : p;
  });
  const ordered = orderPlans(plans, prep.wheels.map((w) => w.name.distribution));
  const warnings = [
    ...ordered.flatMap((p) => p.warnings.map((w) => `${p.id}: ${w}`)),
    ...pairingWarnings(ordered, prep.wheels.map((w) => ({ name: w.name.distribution, version: w.name.version }))),
  ];

  const apt = [...new Set(ordered.flatMap((p) => p.apt))];
  const aptReasons: string[] = [];
  const add = (pkg: string, why: string) => {
    if (!apt.includes(pkg)) {
      apt.push(pkg);
      aptReasons.push(`${pkg}: ${why}`);
    }
  };
  if (!facts.python?.headers) add('python3-dev', `the image has no Python.h for python${image.python}`);
  // The wheel front end reads pyproject.toml with tomllib (Python 3.11) or else with pip's own parser.
  const [major = 0, minor = 0] = image.python.split('.').map(Number);
  const frontendNeedsPip = major < 3 || (major === 3 && minor < 11);
  const usesPip = ordered.some((p) => p.pip.length > 0 || p.commands.some((c) => c.includes('pip') || (frontendNeedsPip && isWheelFrontend(c)))) || prep.wheels.length > 0 || ordered.some((p) => p.needs.length > 0);
  if (usesPip && !image.hasPip) add('python3-pip', 'the image has no pip');
  if (!image.hasCc) add('gcc', 'the image has no C compiler');
  if (!image.hasCxx) add('g++', 'the image has no C++ compiler');

  const mode = req.persist ? 'persist' : 'overlay';
  for (const t of ordered) keyInputs.set(t, forKey.get(t.id)!);
  return {
    image: path.resolve(req.image),
    mode,
    facts: { arch: facts.arch, os: facts.os, python: facts.python, glibc: facts.glibc, wheelTag: facts.wheelTag, attach: facts.attach },
    jobs,
    accel: describeAccel(req.accel ?? { mode: 'auto' }, image),
    workspace: prep.workspace,
    out: prep.out,
    apt,
    aptReasons,
    hostSteps: hostSteps(facts, mode, prep.workspace),
    targets: ordered,
    withWheels: prep.wheels.map((w) => ({ path: w.path, name: w.name.distribution, version: w.name.version })),
    warnings,
  };
}

function describeAccel(req: AccelRequest, image: ImageInfo): string {
  if (image.accel) return image.accel.kind === 'none' ? image.accel.reason : `${image.accel.kind}: ${image.accel.reason}`;
  if (req.mode === 'none' || !needsEmulation(image.facts.arch)) return req.mode === 'none' ? 'pure emulation (--accel none)' : 'native: nothing to accelerate';
  return `${req.mode}: decided once apt has installed the image's gcc in the build layer`;
}

/** A target's env and commands as planned with keyJobs: --jobs does not change a wheel's cache key. */
const keyInputs = new WeakMap<TargetPlan, { env: Record<string, string>; commands: string[][] }>();

/** Parallel jobs: the CPUs, fewer when memory per job under emulation would not fit. */
export function autoJobs(plans: TargetPlan[], cpus = os.availableParallelism(), memAvailable = memAvailableBytes()): number {
  const perJob = Math.max(512 * MiB, ...plans.map((p) => p.memoryPerJobBytes));
  const byMemory = Math.floor((memAvailable * 0.8) / perJob);
  return Math.max(1, Math.min(cpus, byMemory));
}

function memAvailableBytes(): number {
  try {
    const m = /^MemAvailable:\s+(\d+) kB/m.exec(fs.readFileSync('/proc/meminfo', 'utf8'));
    if (m) return Number(m[1]) * 1024;
  } catch {
    // not Linux
  }
  return os.freemem();
}

function hostSteps(facts: ImageFacts, mode: 'overlay' | 'persist', workspace: string): PlannedStep[] {
  const root = facts.partitions.find((p) => p.role === 'root');
  const boot = facts.partitions.find((p) => p.role === 'boot');
  const rootNo = root ? `partition ${root.number}` : 'the root partition';
  const steps: PlannedStep[] = [
    { step: 'take the image lock and enter a private mount and PID namespace', undo: 'end the namespace (its mounts go with it) and release the lock' },
    { step: `attach ${rootNo} (${facts.attach}, ${mode === 'persist' ? 'read-write' : 'read-only'})`, undo: 'detach it (flagged autoclear once mounted)' },
  ];
  if (mode === 'overlay') {
    steps.push(
      { step: `mount ${rootNo} read-only (ro,noload) as the lower layer`, undo: 'unmount it' },
      { step: `mount an overlay over it, upper layer in ${path.join(workspace, 'overlay')}`, undo: 'unmount it; the upper layer is removed with the workspace' },
    );
  } else {
    steps.push({ step: `mount ${rootNo} read-write: the build's apt and pip installs stay in the image (--persist)`, undo: 'unmount it' });
  }
  if (boot) steps.push({ step: `attach and mount the boot partition ${boot.number} (vfat) if the kernel has vfat`, undo: 'unmount and detach it' });
  steps.push(
    { step: 'mount /proc (own PID namespace), /sys read-only, a private /dev, /run, /tmp', undo: 'unmount them' },
    { step: `bind ${path.join(workspace, 'build')} at /workspace (nosuid,nodev)`, undo: 'unmount it' },
    { step: 'bind the host resolv.conf and a policy-rc.d (no services start) over the image\'s files', undo: 'unmount them' },
  );
  if (facts.arch !== 'x86_64') steps.push({ step: `register a qemu-${archTable[facts.arch].qemu} binfmt_misc entry (or reuse a host entry with the F flag)`, undo: 'remove the entry imgbuild registered' });
  steps.push({ step: 'run each build in the chroot in its own PID namespace', undo: 'kill every process left in the session' });
  return steps;
}

/** Workspace bytes the whole build needs: sources and build trees, and with an overlay the installed packages. */
function workspaceBytes(plan: BuildPlan): number {
  return plan.targets.reduce((n, p) => n + p.diskBytes, 0) + (plan.mode === 'overlay' ? installBytes(plan) : 0);
}

/** What the apt and pip installs take in the root (a generous estimate). */
function installBytes(plan: BuildPlan): number {
  return 64 * MiB + plan.apt.length * 60 * MiB + plan.targets.reduce((n, p) => n + p.pip.length * 40 * MiB, 0);
}

function checkSpace(dir: string, need: number, what: string): void {
  let probe = dir;
  while (!fs.existsSync(probe)) probe = path.dirname(probe);
  const st = fs.statfsSync(probe);
  const free = st.bavail * st.bsize;
  if (free < need) {
    throw new PreconditionError(
      `not enough space in ${what} (${dir}): ${human(free)} free, the build needs about ${human(need)}`,
      what === 'the image' ? 'grow the image first: imgbuild grow IMAGE +SIZE' : 'free some space, or use --workspace DIR on a larger filesystem',
    );
  }
}

function clearWorkspace(ws: string): void {
  for (const name of ['build', 'overlay']) safeRemoveTree(path.join(ws, name));
}

// ---------------------------------------------------------------------------------------------
// The build itself

/** A file-system-safe name for a target's source and log. */
export function slug(plan: TargetPlan): string {
  return `${plan.name}${plan.version ? `-${plan.version}` : ''}`.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** lib/build-wheel.py at targets/local.ts wheelFrontend, in the workspace bound at /workspace. */
function installFrontend(buildDir: string): void {
  const dest = path.join(buildDir, path.posix.relative('/workspace', wheelFrontend));
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(wheelFrontendSource, dest);
  fs.chmodSync(dest, 0o644);
}

// pip's cache lives in the workspace: never in the image (--persist), and reused within a run.
const pipEnv = { PIP_CACHE_DIR: '/workspace/.cache/pip', PIP_BREAK_SYSTEM_PACKAGES: '1', PIP_ROOT_USER_ACTION: 'ignore', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' };

async function runBuild(ctx: Context, req: BuildRequest, prep: Prepared, plan: BuildPlan, image: ImageInfo): Promise<Manifest> {
  const ws = prep.workspace;
  const buildDir = path.join(ws, 'build');
  const upper = path.join(ws, 'overlay');
  // A fresh build layer and source copies every run; nothing of an earlier run leaks in.
  safeRemoveTree(buildDir);
  safeRemoveTree(upper);
  fs.mkdirSync(path.join(buildDir, 'src'), { recursive: true });
  fs.mkdirSync(path.join(buildDir, 'wheels'), { recursive: true });
  installFrontend(buildDir);
  fs.mkdirSync(upper, { mode: 0o700 });
  fs.mkdirSync(plan.out, { recursive: true });
  const logs = path.join(plan.out, 'logs');
  fs.mkdirSync(logs, { recursive: true });
  const owner = fs.statSync(plan.out);
  giveTo(logs, owner);

  const fetched = new Map<TargetPlan, FetchedSource>();
  for (const t of plan.targets) {
    const dest = path.join(buildDir, 'src', slug(t));
    checkpoint('build:fetch');
    fetched.set(t, await stage(ctx.emit, `fetch the source of ${t.id}`, () => fetchSource(ctx, t.source, dest)));
  }
  const imagePath = path.resolve(req.image);
  // Hashed once per version of the file (remembered by device, inode, size, mtime and ctime).
  const imageHashBefore = req.persist ? undefined : await stage(ctx.emit, 'identify the image', () => imageIdentity(imagePath, ctx.cacheDir));
  const manifestImage: ManifestImage = {
    path: imagePath,
    sha256: imageHashBefore ?? '',
    os: image.facts.os,
    glibc: image.facts.glibc,
    python: image.python,
    arch: image.facts.arch,
    wheelTag: image.facts.wheelTag,
  };
  const manifest: Manifest = { version: 1, image: manifestImage, wheels: [] };
  const written: ManifestWheel[] = [];
  const record = (entry: ManifestWheel) => {
    written.push(entry);
    manifest.wheels = [...written];
    writeManifest(plan.out, manifest, owner);
  };

  // The wheel cache: a target whose every input matches an earlier verified build gets that
  // wheel at once. Never with --persist (its point is what the build installs into the image).
  const keys = new Map<TargetPlan, string>();
  const hits = new Map<TargetPlan, Extract<WheelLookup, { kind: 'hit' }>>();
  if (imageHashBefore && req.wheelCache !== false) {
    const withWheels = await Promise.all(prep.wheels.map((w) => hashFile(w.path)));
    const compiler = accelIdentity(req.accel ?? { mode: 'auto' }, image.accel);
    for (const t of plan.targets) {
      const k = keyInputs.get(t)!;
      const needs = [...withWheels, ...t.needs.flatMap((n) => plan.targets.filter((o) => normalizeName(o.name) === normalizeName(n)).map((o) => keys.get(o)!))];
      const key = wheelCacheKey({
        image: imageHashBefore, arch: image.facts.arch, python: image.python, target: t.id, targetVersion: t.version,
        env: k.env, commands: k.commands, pip: t.pip, apt: plan.apt, needs, source: await sourceFingerprint(t.source, fetched.get(t)), compiler,
      });
      keys.set(t, key);
      const found = await lookupWheels(ctx.cacheDir, key);
      if (found.kind === 'hit') hits.set(t, found);
      else if (found.kind === 'damaged') ctx.emit({ kind: 'warn', message: `${t.id}: the wheel cache entry was damaged and is removed (${found.reason}); building again` });
    }
  }
  const useHit = (t: TargetPlan): string[] => {
    const hit = hits.get(t)!;
    const files = hit.files.map((f, i) => {
      const name = path.basename(f);
      fs.copyFileSync(f, path.join(buildDir, 'wheels', name));
      const dest = path.join(plan.out, name);
      fs.copyFileSync(f, dest);
      giveTo(dest, owner);
      record({ ...hit.entries[i]!, image: manifestImage, cached: keys.get(t)! });
      return path.join(buildDir, 'wheels', name);
    });
    ctx.emit({ kind: 'notice', message: `${t.id}: ${files.map((f) => path.basename(f)).join(', ')} from the wheel cache (same image, source, recipe and compiler as a verified earlier build; --no-wheel-cache builds again)` });
    return files;
  };
  if (plan.targets.length > 0 && plan.targets.every((t) => hits.has(t))) {
    for (const t of plan.targets) useHit(t);
    return writeManifest(plan.out, manifest, owner);
  }

  const pipReqs = [...new Set(plan.targets.flatMap((t) => t.pip))];
  if (pipReqs.length > 0) {
    const machine = archTable[image.facts.arch].wheelMachine;
    const cache = path.join(ctx.cacheDir, 'pip', `cp${image.python.replace('.', '')}-${machine}`);
    const missed = await stage(ctx.emit, `download ${pipReqs.length} pip requirement(s) on the host`, () => prefetchPip(ctx, pipReqs, cache, { python: image.python, wheelMachine: machine }));
    if (missed.length > 0) ctx.emit({ kind: 'warn', message: `the host could not download ${missed.join(', ')}: pip in the chroot will try (slower, under emulation)` });
    if (fs.existsSync(cache)) fs.cpSync(cache, path.join(buildDir, 'pip'), { recursive: true });
  }
  fs.mkdirSync(path.join(buildDir, 'pip'), { recursive: true });
  const supplied = prep.wheels.map((w) => {
    const dest = path.join(buildDir, 'wheels', path.basename(w.path));
    fs.copyFileSync(w.path, dest);
    return { ...w, inner: `/workspace/wheels/${path.basename(w.path)}` };
  });

  const mode: SessionMode = req.persist ? 'rw' : 'overlay';

  await withSession(
    ctx,
    { image: req.image, mode, verb: 'build', attach: req.attach, allowBlockDevice: req.allowBlockDevice, workspace: buildDir, ...(req.persist ? {} : { upper }) },
    async (s) => {
      const setupLog = path.join(logs, 'setup.log');
      fs.writeFileSync(setupLog, '');
      giveTo(setupLog, owner);
      if (req.persist) checkSpace(s.file('/'), installBytes(plan), 'the image');
      let accelEnv: Record<string, string> = {};
      let accelNote = '';
      const exec = (argv: string[], o: { env?: Record<string, string>; cwd?: string; log: string }) =>
        s.exec(argv, { env: { ...pipEnv, ...accelEnv, ...o.env }, cwd: o.cwd, logFile: o.log, onLine: (line) => ctx.emit({ kind: 'output', line }), group: true, allowFailure: true });

      if (plan.apt.length > 0) {
        await stage(ctx.emit, `install ${plan.apt.length} apt package(s) in the ${req.persist ? 'image' : 'build layer'}`, async () => {
          const env = { DEBIAN_FRONTEND: 'noninteractive' };
          await checked(await exec(['apt-get', 'update'], { env, log: setupLog }), 'apt-get update', setupLog, 'check the image\'s /etc/apt/sources.list and the network');
          await checked(await exec(['apt-get', 'install', '-y', '--no-install-recommends', ...plan.apt], { env, log: setupLog }), `apt-get install ${plan.apt.join(' ')}`, setupLog, 'a package name may not exist in this release');
        });
      }
      const limit = req.memoryLimit ?? defaultMemoryLimit();
      if (limit > 0) {
        const lim = await s.limitMemory(limit);
        if (lim.ok) ctx.emit({ kind: 'info', message: `build commands run under a ${human(limit)} memory limit (cgroup v${lim.cgroup.version})` });
        else ctx.emit({ kind: 'warn', message: `no memory limit for the build: ${lim.reason}; an out-of-memory build may hit other processes on this host` });
      }
      // After apt: the binds must never be up while dpkg runs.
      const accel = await stage(ctx.emit, 'set up compiler acceleration', () => startAccel(ctx, s, req.accel ?? { mode: 'auto' }));
      // Accelerated builds move deflate out of the emulator too: the front end writes wheels
      // stored, and they are deflated here, natively (seconds per megabyte under qemu).
      const hostDeflate = accel.decision.kind !== 'none';
      accelEnv = hostDeflate ? { ...accel.env, IMGBUILD_STORE_WHEELS: '1' } : accel.env;
      accelNote = accel.decision.kind === 'none' ? accel.decision.reason : `${accel.decision.kind}: ${accel.decision.reason}`;
      const compiler = await compilerVersion(s, accelEnv);
      for (const w of supplied) {
        await stage(ctx.emit, `install --with-wheel ${path.basename(w.path)}`, async () => {
          await checked(await exec(['python3', '-m', 'pip', 'install', '--no-deps', '--no-index', w.inner], { log: setupLog }), `pip install ${w.inner}`, setupLog, 'is the wheel for this image (python and platform tags)?');
        });
      }
      // Sonames shipped by wheels each later target may link against.
      const shipped = new Map<string, string[]>();
      for (const w of supplied) shipped.set(normalizeName(w.name.distribution), sonamesOf(w.path));

      // Later targets that need a target get its wheels installed (in the build layer, or the image with --persist).
      const installForLater = async (i: number, files: string[], log: string) => {
        const t = plan.targets[i]!;
        if (!plan.targets.slice(i + 1).some((o) => o.needs.some((n) => normalizeName(n) === normalizeName(t.name)))) return;
        for (const file of files) {
          const inner = `/workspace/wheels/${path.basename(file)}`;
          await checked(await exec(['python3', '-m', 'pip', 'install', '--no-deps', '--no-index', '--force-reinstall', inner], { log }), `pip install ${inner}`, log, undefined, t.id);
        }
      };
      const lowerRoot = s.ns.hostPath(s.imageRoot);
      const buildRoot = s.ns.hostPath(s.root);
      for (const [i, t] of plan.targets.entries()) {
        const log = path.join(logs, `${slug(t)}.log`);
        fs.writeFileSync(log, `# imgbuild: ${t.id}\n`);
        giveTo(log, owner);
        if (hits.has(t)) {
          const files = useHit(t);
          for (const f of files) shipped.set(normalizeName(t.name), sonamesOf(f));
          await installForLater(i, files, log);
          continue;
        }
        const t0 = performance.now();
        const srcInner = `/workspace/src/${slug(t)}`;
        const srcHost = path.join(buildDir, 'src', slug(t));
        const built = await stage(ctx.emit, `build ${t.id}`, async () => {
          if (t.pip.length > 0) {
            const r = await exec(['python3', '-m', 'pip', 'install', '--find-links', '/workspace/pip', ...t.pip], { log });
            await checked(r, `pip install ${t.pip.join(' ')}`, log, 'the build prerequisites could not be installed; see the log', t.id, { cgroup: s.memory, jobs: plan.jobs });
          }
          for (const cmd of t.commands) {
            checkpoint('build:compile');
            const r = await exec(cmd, { env: t.env, cwd: srcInner, log });
            await checked(r, cmd.join(' '), log, undefined, t.id, { cgroup: s.memory, jobs: plan.jobs });
          }
          const wheels = builtWheels(srcHost, t.wheelDir, t.id);
          if (wheels.length === 0) throw new StepError(`${t.id} built no wheel: nothing in ${t.wheelDir}/`, `see ${log}`);
          return wheels;
        });

        const provided = t.needs.flatMap((n) => shipped.get(normalizeName(n)) ?? []);
        const mine: ManifestWheel[] = [];
        for (const file of built) {
          // Verified as built (stored, which is cheap to unpack under qemu) while it is deflated
          // natively beside it; the deflated copy then takes its place.
          const deflating = hostDeflate ? deflateOnHost(file, log) : undefined;
          let name: WheelName;
          try {
            name = await stage(ctx.emit, `verify ${path.basename(file)}`, () => verify(s, file, t, { inner: path.posix.join(srcInner, t.wheelDir, path.basename(file)), lowerRoot, buildRoot, provided, python: image.python, log, accel: accel.decision }));
          } catch (error) {
            await deflating?.abandon();
            throw error;
          }
          await deflating?.finish();
          const seconds = Math.round((performance.now() - t0) / 100) / 10;
          const dest = path.join(plan.out, path.basename(file));
          fs.copyFileSync(file, dest);
          fs.copyFileSync(file, path.join(buildDir, 'wheels', path.basename(file)));
          giveTo(dest, owner);
          const entry: ManifestWheel = {
            file: path.basename(file),
            sha256: await hashFile(file),
            size: fs.statSync(file).size,
            tags: { python: name.python, abi: name.abi, platform: name.platform },
            name: name.distribution,
            version: name.version,
            target: t.id,
            ...(t.version ? { targetVersion: t.version } : {}),
            source: fetched.get(t)!,
            env: t.env,
            commands: t.commands,
            image: manifestImage,
            compiler,
            accel: accelNote,
            seconds,
            log,
          };
          record(entry);
          mine.push(entry);
          shipped.set(normalizeName(t.name), sonamesOf(file));
          shipped.set(normalizeName(name.distribution), sonamesOf(file));
        }
        const key = keys.get(t);
        if (key) {
          await storeWheels(ctx.cacheDir, key, built, mine).catch((error: unknown) => {
            ctx.emit({ kind: 'warn', message: `${t.id}: could not store the wheel in the cache: ${errorMessage(error)}` });
          });
        }
        await installForLater(i, built, log);
      }
    },
  );

  if (req.persist) manifestImage.sha256 = await stage(ctx.emit, 'hash the image', () => hashFile(imagePath));
  manifest.wheels = [...written];
  return writeManifest(plan.out, manifest, owner);
}

/**
 * The wheels a build left in `wheelDir` of its tree. That tree is the chroot's to write while it
 * runs, and imgbuild reads, renames and copies these files on the host: the directory must be a
 * plain one (no symlink on the way, which could lead to a host directory) and each wheel a
 * regular file (not a symlink to a host file).
 */
function builtWheels(srcHost: string, wheelDir: string, id: string): string[] {
  const want = `/${wheelDir.split('/').filter(Boolean).join('/')}`;
  let r;
  try {
    r = resolveInRoot(srcHost, want);
  } catch (error) {
    throw new StepError(`${id}: ${wheelDir}/ cannot be read: ${errorMessage(error)}`, 'a build step changed the tree\'s layout');
  }
  if (r.inner === want && r.type === 'missing') return [];
  if (r.inner !== want || r.type !== 'dir') {
    throw new StepError(`${id}: ${wheelDir}/ in the build tree is not a plain directory (it leads to ${r.inner}, ${r.type}): wheels are not read through it`, 'a build step replaced it with a symlink or a file; check the project\'s build scripts');
  }
  const files: string[] = [];
  for (const name of fs.readdirSync(r.host).filter((f) => f.endsWith('.whl')).sort()) {
    const file = path.join(r.host, name);
    if (!fs.lstatSync(file).isFile()) {
      throw new StepError(`${id}: ${wheelDir}/${name} is not a regular file (a symlink?): it is not read`, 'a build step put a link where a wheel belongs; check the project\'s build scripts');
    }
    files.push(file);
  }
  return files;
}

/**
 * Deflate a wheel's stored members natively, beside it, while the caller goes on (verification
 * runs in the chroot meanwhile); `finish` puts the result in its place. A wheel left stored is
 * still a valid wheel: a failure here is logged and the build goes on with it.
 */
function deflateOnHost(file: string, log: string): { finish(): Promise<void>; abandon(): Promise<void> } {
  const t0 = performance.now();
  const side = `${file}.deflated`;
  fs.rmSync(side, { force: true });
  const done = deflateStored(file, side).then(
    (r) => r,
    (error: unknown) => {
      fs.appendFileSync(log, `imgbuild: could not deflate ${path.basename(file)} on the host, it stays uncompressed: ${errorMessage(error)}\n`);
      return undefined;
    },
  );
  return {
    async finish() {
      const r = await done;
      if (!r || r.deflated === 0) return;
      fs.renameSync(side, file);
      fs.appendFileSync(log, `imgbuild: deflated ${r.deflated} member(s) of ${path.basename(file)} on the host in ${Math.round(performance.now() - t0)} ms (${r.bytesBefore} -> ${r.bytesAfter} bytes)\n`);
    },
    async abandon() {
      await done;
      fs.rmSync(side, { force: true });
    },
  };
}

/** Throws the StepError a failed build step deserves: target, exit code, the last 30 lines, the log. */
async function checked(r: { exitCode: number; all: string; signal?: string }, what: string, log: string, hint?: string, target?: string, memory?: { cgroup?: MemoryCgroup; jobs: number }): Promise<void> {
  if (r.exitCode === 0) return;
  const how = r.signal ? `was killed by ${r.signal}` : `failed with exit code ${r.exitCode}`;
  const killed = r.signal === 'SIGKILL' || r.exitCode === 137 || /Killed signal terminated program|fatal error: Killed/.test(r.all);
  let oom = killed ? ' (killed: out of memory? try a smaller --jobs)' : '';
  if (memory?.cgroup?.oomKilled()) {
    const fewer = Math.max(1, Math.floor(memory.jobs / 2));
    oom = ` (ran out of memory: the build hit its ${human(memory.cgroup.limitBytes)} limit with --jobs ${memory.jobs} and the kernel killed a build process; ${memory.jobs > 1 ? `try --jobs ${fewer}` : 'it needs more memory than this host can spare: free memory or raise --memory-limit'})`;
  }
  const tail = tailLines(r.all, 30);
  const full = /No space left on device|Disk quota exceeded/.test(r.all) ? ' (no space left on device: the workspace, or with --persist the image, is full; free space, use --workspace DIR elsewhere, or imgbuild grow IMAGE +SIZE)' : '';
  throw new StepError(`${target ? `${target}: ` : ''}${what} ${how}${oom}${full}\n--- last lines of ${log} ---\n${tail}`, `${hint ? `${hint}; ` : ''}full log: ${log}`);
}

/** What the host can spare: available memory less a reserve for everything else (at least 1 GiB). */
export function defaultMemoryLimit(available = memAvailableBytes(), total = os.totalmem()): number {
  return Math.max(GiB, Math.floor(available - Math.max(512 * MiB, total * 0.1)));
}

async function compilerVersion(s: Session, env: Record<string, string>): Promise<string | undefined> {
  const r = await s.exec(['cc', '--version'], { allowFailure: true, quiet: true, env });
  return r.exitCode === 0 ? r.stdout.split('\n')[0]?.trim() : undefined;
}

/** Libraries a wheel ships, by file name: ld.so finds a DT_NEEDED by file name, not by DT_SONAME. */
function sonamesOf(file: string): string[] {
  return [...new Set(wheelElves(file).map((e) => path.posix.basename(e.member)))];
}

/**
 * The checks a wheel must pass before it is reported: tags and ELF machines fit the image, every
 * NEEDED library resolves in the image as the user has it (not in the build layer), and the
 * module imports from a throwaway install in the chroot.
 */
async function verify(
  s: Session,
  file: string,
  t: TargetPlan,
  o: { inner: string; lowerRoot: string; buildRoot: string; provided: string[]; python: string; log: string; accel?: AccelDecision },
): Promise<WheelName> {
  checkpoint('build:verify');
  const report = verifyWheel(file, { rootHost: o.lowerRoot, arch: s.arch, python: o.python, provided: o.provided });
  const problems = [...report.problems];
  if (report.unresolved.length > 0) {
    const dirs = libraryDirs(o.buildRoot, s.arch);
    for (const u of report.unresolved) {
      if (findLibrary(o.buildRoot, dirs, u.soname, s.arch)) {
        problems.push(`${u.soname} exists only in the build layer (installed during the build, not in the image): the wheel would not load on the board. Install the package that provides it in the image, or link it statically`);
      }
    }
  }
  const hints = ['the wheel was not copied to --out'];
  if (report.missingVersions.length > 0) hints.unshift(...versionHints(report.missingVersions, o.buildRoot, s.arch, o.accel));
  if (problems.length > 0) {
    throw new StepError(`${t.id}: ${path.basename(file)} does not fit the image:\n${problems.map((p) => `  - ${p}`).join('\n')}`, hints.join('; '));
  }
  const dest = `/tmp/imgbuild-verify-${slug(t)}`;
  const script = [
    'import importlib, shutil, sys, zipfile',
    'whl, dest, mod = sys.argv[1:4]',
    'shutil.rmtree(dest, ignore_errors=True)',
    'zipfile.ZipFile(whl).extractall(dest)',
    'sys.path.insert(0, dest)',
    'try:',
    '    m = importlib.import_module(mod)',
    '    where = getattr(m, "__file__", "") or ""',
    '    print("imported", mod, "from", where)',
    'finally:',
    '    shutil.rmtree(dest, ignore_errors=True)',
    'sys.exit(0 if where.startswith(dest + "/") else 3)',
  ].join('\n');
  // The same process removes its copy: no second emulated process for an rm.
  const r = await s.exec(['python3', '-c', script, o.inner, dest, t.importName], { cwd: '/tmp', logFile: o.log, allowFailure: true, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.exitCode === 3) {
    throw new StepError(`${t.id}: import ${t.importName} did not come from ${path.basename(file)} (${r.all.trim().split('\n').pop()})`, `set the module with the recipe option import=NAME, e.g. --target ${t.id},import=mymodule`);
  }
  if (r.exitCode !== 0) {
    throw new StepError(`${t.id}: python3 -c "import ${t.importName}" fails with ${path.basename(file)} installed:\n${tailLines(r.all, 30)}`, `if the module has another name, pass import=NAME (--target ${t.id},import=NAME); full log: ${o.log}`);
  }
  return report.name;
}

/** Why a wheel needs symbol versions the image lacks, and what to do: the likely cause first. */
function versionHints(missing: WheelReport['missingVersions'], buildRoot: string, arch: Arch, accel: AccelDecision | undefined): string[] {
  const hints: string[] = [];
  const dirs = libraryDirs(buildRoot, arch);
  const layer = missing.filter((m) => {
    const inner = findLibrary(buildRoot, dirs, m.file, arch);
    if (!inner) return false;
    const r = resolveInRoot(buildRoot, inner);
    const defs = r.type === 'file' ? (readElfDynamic(fs.readFileSync(r.host))?.verdef ?? []) : [];
    return m.versions.every((v) => defs.includes(v));
  });
  for (const m of layer) hints.push(`the build layer has a newer ${m.file} than the image (installed during the build): install that package into the image first (--persist), or build against the image's version`);
  if (accel && accel.kind !== 'none' && accel.forced) {
    hints.push(`it was compiled by the host's gcc ${accel.host.major}, forced over the image's gcc ${accel.image.major} (--accel-gcc): build without --accel-gcc, or with --accel none`);
  } else if (layer.length < missing.length) {
    hints.push("the image's compiler or headers are newer than its runtime libraries (a toolchain installed apart from the system's libstdc++, say): install the matching runtime in the image, or link the library statically (e.g. LDFLAGS=-static-libstdc++)");
  }
  return hints;
}

/** Files in --out belong to whoever owns --out (the user behind sudo, usually). */
function giveTo(file: string, owner: fs.Stats): void {
  if (owner.uid === 0 && owner.gid === 0) return;
  try {
    fs.chownSync(file, owner.uid, owner.gid);
  } catch {
    // not ours to give
  }
}

/** The --dry-run listing: host steps with their undo, then per target what runs in the chroot. */
export function formatPlan(plan: BuildPlan): string {
  const f = plan.facts;
  const lines = [
    `image:     ${plan.image}`,
    `           ${f.os.PRETTY_NAME ?? 'unknown OS'}, ${f.arch}, python ${f.python?.version ?? '?'}, glibc ${f.glibc ?? '?'}, wheel tag ${f.wheelTag ?? '?'}`,
    `mode:      ${plan.mode === 'persist' ? 'persist: apt and pip installs are written into the image' : 'overlay: the image stays unchanged; installs go to a throwaway layer'}`,
    `jobs:      ${plan.jobs}`,
    `compiler:  ${plan.accel}`,
    `workspace: ${plan.workspace}`,
    `out:       ${plan.out} (wheels, manifest.json, logs/)`,
    '',
    'host steps (each undone in reverse order, also after an error, Ctrl-C or SIGTERM; `imgbuild recover` after kill -9):',
    ...plan.hostSteps.map((s, i) => `  ${String(i + 1).padStart(2)}. ${s.step}\n      undo: ${s.undo}`),
    '',
    `apt packages (${plan.mode === 'persist' ? 'into the image' : 'into the build layer'}): ${plan.apt.length ? plan.apt.join(' ') : 'none'}`,
    ...plan.aptReasons.map((r) => `  added ${r}`),
  ];
  if (plan.withWheels.length) lines.push('', 'wheels installed first (--with-wheel):', ...plan.withWheels.map((w) => `  ${w.name} ${w.version}: ${w.path}`));
  for (const [i, t] of plan.targets.entries()) {
    const src = t.source.kind === 'git' ? `git ${t.source.url} at ${t.source.ref}${t.source.submodules ? ' with submodules' : ''} (cloned on the host into the cache)` : `${t.source.path} (copied on the host${t.source.kind === 'path' ? ', without top-level build/ and dist/' : ''})`;
    lines.push(
      '',
      `target ${i + 1}/${plan.targets.length}: ${t.id}`,
      `  source:   ${src}`,
      `  in:       /workspace/src/${slug(t)}`,
      ...(t.needs.length ? [`  needs:    ${t.needs.join(', ')} (installed first)`] : []),
      `  pip:      ${t.pip.length ? t.pip.join(' ') : 'none'}`,
      '  env:',
      ...Object.entries(t.env).map(([k, v]) => `    ${k}=${v}`),
      '  commands:',
      ...t.commands.map((c) => `    ${c.join(' ')}`),
      `  wheel:    ${t.wheelDir}/*.whl, then checked: tags ${f.wheelTag ?? ''}, ELF machine ${f.arch}, NEEDED libraries and symbol versions in the image, python3 -c "import ${t.importName}"`,
      `  space:    about ${human(t.diskBytes)}; memory about ${human(t.memoryPerJobBytes)} per job`,
      ...t.notes.map((n) => `  note:     ${n}`),
      ...t.warnings.map((w) => `  warning:  ${w}`),
    );
  }
  if (plan.warnings.length) lines.push('', 'warnings:', ...plan.warnings.map((w) => `  ${w}`));
  return lines.join('\n');
}
