// The wheel cache in a build: a target whose every input matches an earlier verified build gets
// that wheel at once. Never with --persist (its point is what the build installs into the image).
import path from 'node:path';
import { accelIdentity } from '../accel/index.js';
import { errorMessage } from '../core/errors.js';
import { stage } from '../core/events.js';
import { hashFile } from '../core/hash.js';
import { normalizeName, type TargetPlan } from '../targets/index.js';
import { imageIdentity, lookupWheels, type ManifestWheel, sourceFingerprint, storeWheels, wheelCacheKey } from '../wheel/index.js';
import { putWheel, record } from './output.js';
import { copyIntoTree } from './take.js';
import type { BuildRun } from './run.js';

/** The image's sha256 for the cache keys and the manifest (with --persist: hashed once built). */
export async function identifyImage(run: BuildRun): Promise<void> {
  if (run.req.persist) return;
  // Hashed once per version of the file (remembered by device, inode, size, mtime and ctime).
  run.manifest.image.sha256 = await stage(run.ctx.emit, 'identify the image', () => imageIdentity(run.plan.image, run.ctx.cacheDir));
}

/** Each target's cache key (it covers the keys of the targets it needs) and its hit, if any. */
export async function lookUpCache(run: BuildRun): Promise<void> {
  const { ctx, req, image, plan } = run;
  const imageHash = run.manifest.image.sha256;
  if (!imageHash || req.wheelCache === false) return;
  const withWheels = await Promise.all(run.inputs.wheels.map((w) => hashFile(w.path)));
  const compiler = accelIdentity(req.accel ?? { mode: 'auto' }, image.accel);
  for (const t of plan.targets) {
    const k = run.keyInputs.get(t)!;
    const needs = [...withWheels, ...t.needs.flatMap((n) => plan.targets.filter((o) => normalizeName(o.name) === normalizeName(n)).map((o) => run.keys.get(o)!))];
    const key = wheelCacheKey({
      image: imageHash, arch: image.facts.arch, python: image.python, interpreter: image.facts.python?.path === '/usr/bin/python3' ? undefined : image.facts.python?.path, target: t.id, targetVersion: t.version,
      env: k.env, commands: k.commands, pip: t.pip, apt: plan.apt, needs, source: await sourceFingerprint(t.source, run.fetched.get(t)), compiler,
    });
    run.keys.set(t, key);
    // A cached wheel never ran this --test-command: build it again (and store it) instead.
    if (req.testCommand) continue;
    const found = await lookupWheels(ctx.cacheDir, key);
    if (found.kind === 'hit') run.hits.set(t, found);
    else if (found.kind === 'damaged') ctx.emit({ kind: 'warn', message: `${t.id}: the wheel cache entry was damaged and is removed (${found.reason}); building again` });
  }
}

/** When every target has a hit, uses them all: nothing needs mounting. */
export function useCacheForAll(run: BuildRun): boolean {
  const { targets } = run.plan;
  if (targets.length === 0 || !targets.every((t) => run.hits.has(t))) return false;
  for (const t of targets) useHit(run, t);
  return true;
}

/** A target's cached wheels into the build tree (for later targets) and --out; the manifest says so. */
export function useHit(run: BuildRun, t: TargetPlan): string[] {
  const hit = run.hits.get(t)!;
  const files = hit.files.map((f, i) => {
    const name = path.basename(f);
    copyIntoTree(f, run.dirs.build, `/wheels/${name}`);
    putWheel(run, f);
    record(run, { ...hit.entries[i]!, image: run.manifest.image, cached: run.keys.get(t)! });
    // The cache's own file (root's, out of the chroot's reach) is what later steps read.
    return f;
  });
  run.ctx.emit({ kind: 'notice', message: `${t.id}: ${files.map((f) => path.basename(f)).join(', ')} from the wheel cache (same image, source, recipe and compiler as a verified earlier build; --no-wheel-cache builds again)` });
  return files;
}

/** A verified build's wheels into the cache; a failure to store them fails nothing. */
export async function storeInCache(run: BuildRun, t: TargetPlan, built: string[], entries: ManifestWheel[]): Promise<void> {
  const key = run.keys.get(t);
  if (!key) return;
  await storeWheels(run.ctx.cacheDir, key, built, entries).catch((error: unknown) => {
    run.ctx.emit({ kind: 'warn', message: `${t.id}: could not store the wheel in the cache: ${errorMessage(error)}` });
  });
}
