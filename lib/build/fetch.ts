// What is put in the build tree on the host before the session: each target's source, the pip
// requirements downloaded natively, and copies of the --with-wheel wheels.
import fs from 'node:fs';
import path from 'node:path';
import fse from 'fs-extra';
import { stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import type { BuildRun, SuppliedWheel } from './run.js';
import { hostPipArgs } from './pip-sources.js';
import { fetchSource, prefetchPip } from './sources.js';
import { sourceDir } from './workspace.js';

/** A --with-wheel wheel and where the chroot sees its copy. */
export interface CopiedWheel extends SuppliedWheel {
  inner: string;
}

export async function fetchSources(run: BuildRun): Promise<void> {
  for (const t of run.plan.targets) {
    const dest = sourceDir(run, t).host;
    checkpoint('build:fetch');
    run.fetched.set(t, await stage(run.ctx.emit, `fetch the source of ${t.id}`, () => fetchSource(run.ctx, t.source, dest, { offline: run.inputs.pip.offline })));
  }
}

/** pip requirements downloaded on the host into the cache, and given to the chroot at /workspace/pip. */
export async function prefetchRequirements(run: BuildRun): Promise<void> {
  const { ctx, image } = run;
  const pipReqs = [...new Set(run.plan.targets.flatMap((t) => t.pip))];
  if (pipReqs.length > 0 && !run.inputs.pip.offline) {
    const machine = image.facts.machine;
    const cache = path.join(ctx.cacheDir, 'pip', `cp${image.python.replace('.', '')}-${machine}`);
    const missed = await stage(ctx.emit, `download ${pipReqs.length} pip requirement(s) on the host`, () => prefetchPip(ctx, pipReqs, cache, { python: image.python, wheelMachine: machine }, hostPipArgs(run.inputs.pip)));
    if (missed.length > 0) ctx.emit({ kind: 'warn', message: `the host could not download ${missed.join(', ')}: pip in the chroot will try (slower, under emulation)` });
    if (fs.existsSync(cache)) await fse.copy(cache, path.join(run.dirs.build, 'pip'));
  }
  fs.mkdirSync(path.join(run.dirs.build, 'pip'), { recursive: true });
}

export function copyWithWheels(run: BuildRun): CopiedWheel[] {
  return run.inputs.wheels.map((w) => {
    const dest = path.join(run.dirs.build, 'wheels', path.basename(w.path));
    fs.copyFileSync(w.path, dest);
    return { ...w, inner: `/workspace/wheels/${path.basename(w.path)}` };
  });
}
