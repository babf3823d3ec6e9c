// The plan: targets planned against the image's facts in build order, --jobs, apt packages, the
// host steps with their undo, and estimates of the space and memory the build takes.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { AccelRequest } from '../accel/index.js';
import { archTable, needsEmulation } from '../core/arch.js';
import { PreconditionError } from '../core/errors.js';
import { GiB, MiB } from '../core/units.js';
import type { ImageFacts } from '../session/index.js';
import { isSdist, isWheelFrontend, unpackCommand } from '../targets/local.js';
import { cmakeForRelease, normalizeName, orderPlans, pairingWarnings, planTarget, type TargetPlan } from '../targets/index.js';
import { keyJobs } from '../wheel/index.js';
import type { ImageInfo, Inputs, KeyInputs } from './run.js';
import type { BuildPlan, BuildRequest, PlannedStep } from './types.js';

export function makePlan(req: BuildRequest, inputs: Inputs, image: ImageInfo): { plan: BuildPlan; keyInputs: Map<TargetPlan, KeyInputs> } {
  const { facts } = image;
  const base = { python: image.python, arch: facts.arch, aptCmake: cmakeForRelease(facts.os.VERSION_CODENAME) };
  let plans = inputs.args.map((a) => withSource(planTarget(a.spec, { ...base, jobs: keyJobs, recipeOptions: a.options }), inputs));
  const forKey = new Map(plans.map((p) => [p.id, { env: p.env, commands: p.commands }]));
  const jobs = req.jobs === 'auto' ? autoJobs(plans) : req.jobs;
  plans = inputs.args.map((a) => withSource(planTarget(a.spec, { ...base, jobs, recipeOptions: a.options }), inputs));
  const ordered = orderPlans(plans, inputs.wheels.map((w) => w.name.distribution));
  const warnings = [
    ...ordered.flatMap((p) => p.warnings.map((w) => `${p.id}: ${w}`)),
    ...pairingWarnings(ordered, inputs.wheels.map((w) => ({ name: w.name.distribution, version: w.name.version }))),
  ];
  const { apt, aptReasons } = aptPackages(ordered, inputs, image);
  const mode = req.persist ? 'persist' : 'overlay';
  const keyInputs = new Map(ordered.map((t) => [t, forKey.get(t.id)!]));
  const plan: BuildPlan = {
    image: path.resolve(req.image),
    mode,
    facts: { arch: facts.arch, os: facts.os, python: facts.python, glibc: facts.glibc, wheelTag: facts.wheelTag, attach: facts.attach },
    jobs,
    accel: describeAccel(req.accel ?? { mode: 'auto' }, image),
    workspace: inputs.workspace,
    out: inputs.out,
    apt,
    aptReasons,
    hostSteps: hostSteps(facts, mode, inputs.workspace),
    targets: ordered,
    withWheels: inputs.wheels.map((w) => ({ path: w.path, name: w.name.distribution, version: w.name.version })),
    pipSources: inputs.pip,
    ...(req.testCommand ? { testCommand: req.testCommand } : {}),
    warnings,
  };
  return { plan, keyInputs };
}

// --source NAME=PATH in place of the target's own source; a tarball is unpacked in the chroot
// first (by the front end, refusing members outside it), so the commands see a source tree.
function withSource(p: TargetPlan, inputs: Inputs): TargetPlan {
  const local = inputs.sources.get(normalizeName(p.name));
  if (!local) return p;
  const archive = isSdist(local) && fs.statSync(local).isFile();
  const commands = archive ? [unpackCommand(`./${path.basename(local)}`), ...p.commands] : p.commands;
  return { ...p, source: { kind: 'path', path: local }, commands, notes: [...p.notes, `source: ${local} (--source)`] };
}

// The recipes' apt packages, and what the image lacks to build and install wheels at all.
function aptPackages(ordered: TargetPlan[], inputs: Inputs, image: ImageInfo): { apt: string[]; aptReasons: string[] } {
  const apt = [...new Set(ordered.flatMap((p) => p.apt))];
  const aptReasons: string[] = [];
  const add = (pkg: string, why: string) => {
    if (!apt.includes(pkg)) {
      apt.push(pkg);
      aptReasons.push(`${pkg}: ${why}`);
    }
  };
  if (!image.facts.python?.headers) add('python3-dev', `the image has no Python.h for python${image.python}`);
  // The wheel front end reads pyproject.toml with tomllib (Python 3.11) or else with pip's own parser.
  const [major = 0, minor = 0] = image.python.split('.').map(Number);
  const frontendNeedsPip = major < 3 || (major === 3 && minor < 11);
  const usesPip = ordered.some((p) => p.pip.length > 0 || p.commands.some((c) => c.includes('pip') || (frontendNeedsPip && isWheelFrontend(c)))) || inputs.wheels.length > 0 || ordered.some((p) => p.needs.length > 0);
  const py = image.facts.python;
  if (usesPip && !image.hasPip && py?.prefix && !py.systemSitePackages) {
    throw new PreconditionError(`${py.path}: the ${py.kind} at ${py.prefix} has no pip, and Debian's python3-pip would not reach it`, `install pip into it (imgbuild run IMAGE --rw --python ${py.path} -- python3 -m ensurepip), or make it with --system-site-packages`);
  }
  if (usesPip && !image.hasPip) add('python3-pip', 'the image has no pip');
  if (!image.hasCc) add('gcc', 'the image has no C compiler');
  if (!image.hasCxx) add('g++', 'the image has no C++ compiler');
  return { apt, aptReasons };
}

function describeAccel(req: AccelRequest, image: ImageInfo): string {
  if (image.accel) return image.accel.kind === 'none' ? image.accel.reason : `${image.accel.kind}: ${image.accel.reason}`;
  if (req.mode === 'none' || !needsEmulation(image.facts.arch)) return req.mode === 'none' ? 'pure emulation (--accel none)' : 'native: nothing to accelerate';
  return `${req.mode}: decided once apt has installed the image's gcc in the build layer`;
}

/** Parallel jobs: the CPUs, fewer when memory per job under emulation would not fit. */
export function autoJobs(plans: TargetPlan[], cpus = os.availableParallelism(), memAvailable = memAvailableBytes()): number {
  const perJob = Math.max(512 * MiB, ...plans.map((p) => p.memoryPerJobBytes));
  const byMemory = Math.floor((memAvailable * 0.8) / perJob);
  return Math.max(1, Math.min(cpus, byMemory));
}

/** What the host can spare: available memory less a reserve for everything else (at least 1 GiB). */
export function defaultMemoryLimit(available = memAvailableBytes(), total = os.totalmem()): number {
  return Math.max(GiB, Math.floor(available - Math.max(512 * MiB, total * 0.1)));
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
export function workspaceBytes(plan: BuildPlan): number {
  return plan.targets.reduce((n, p) => n + p.diskBytes, 0) + (plan.mode === 'overlay' ? installBytes(plan) : 0);
}

/** What the apt and pip installs take in the root (a generous estimate). */
export function installBytes(plan: BuildPlan): number {
  return 64 * MiB + plan.apt.length * 60 * MiB + plan.targets.reduce((n, p) => n + p.pip.length * 40 * MiB, 0);
}
