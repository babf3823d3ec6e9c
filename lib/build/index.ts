// The main job: build image-matched wheels. Everything that can go wrong with the input is
// checked before anything is mounted; sources are fetched on the host; the build runs in the
// image's chroot over a throwaway layer in the workspace (or in the image with --persist); every
// wheel is verified against the image as the user has it before it is reported. build() is the
// flow as a flat list of stages over one BuildRun (run.ts); each stage lives in the file of its
// concern.
import type { Context } from '../core/context.js';
import { withSession } from '../session/index.js';
import type { Manifest } from '../wheel/index.js';
import { identifyImage, lookUpCache, useCacheForAll } from './cache.js';
import { prepareChroot, sessionOptions } from './chroot.js';
import { copyWithWheels, fetchSources, prefetchRequirements } from './fetch.js';
import { readImage } from './image.js';
import { closeOut, writeOutput } from './output.js';
import { makePlan } from './plan.js';
import { checkRequest } from './request.js';
import type { Planned } from './run.js';
import { buildTarget } from './target.js';
import type { BuildRequest, BuildResult } from './types.js';
import { freshWorkspace, lockWorkspace, releaseWorkspace } from './workspace.js';

export type { BuildPlan, BuildRequest, BuildResult, PlannedStep } from './types.js';
export { formatPlan } from './format-plan.js';
export { autoJobs, defaultMemoryLimit } from './plan.js';
export { defaultWorkspace, slug } from './workspace.js';

/** Build (or with dryRun, plan) the requested targets. */
export async function build(ctx: Context, req: BuildRequest): Promise<BuildResult> {
  const inputs = await checkRequest(ctx, req);
  const image = await readImage(ctx, req, inputs.wheels);
  const planned: Planned = { ctx, req, inputs, image, ...makePlan(req, inputs, image) };
  for (const w of planned.plan.warnings) ctx.emit({ kind: 'warn', message: w });
  if (req.dryRun) return { plan: planned.plan };

  const lock = await lockWorkspace(planned);
  let ok = false;
  try {
    const manifest = await runBuild(planned);
    ok = true;
    return { plan: planned.plan, manifest };
  } finally {
    await releaseWorkspace(ctx, inputs, lock, ok);
  }
}

async function runBuild(planned: Planned): Promise<Manifest> {
  const run = freshWorkspace(planned);
  try {
    await fetchSources(run);
    await identifyImage(run);
    await lookUpCache(run);
    if (useCacheForAll(run)) return await writeOutput(run);
    await prefetchRequirements(run);
    const supplied = copyWithWheels(run);
    await withSession(run.ctx, sessionOptions(run), async (s) => {
      const chroot = await prepareChroot(run, s, supplied);
      for (const i of run.plan.targets.keys()) await buildTarget(run, chroot, i);
    });
    return await writeOutput(run);
  } finally {
    closeOut(run.out);
  }
}
