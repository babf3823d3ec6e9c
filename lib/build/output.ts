// What the build leaves in --out: the wheels, logs/ and manifest.json (written again after each
// wheel), every file given to whoever owns --out.
import fs from 'node:fs';
import path from 'node:path';
import { stage } from '../core/events.js';
import { hashFile } from '../core/hash.js';
import { makeDirs } from '../core/dirs.js';
import { errorMessage, PreconditionError } from '../core/errors.js';
import { HeldDir } from '../core/held-dir.js';
import { type Manifest, type ManifestWheel, writeManifest } from '../wheel/index.js';
import type { BuildRun, OutDir, Planned } from './run.js';

/**
 * --out, held by its descriptor for the whole build (core/held-dir.ts): the user who owns it may
 * rename it or plant links in it while root writes there. Its logs/ is root's while the build
 * writes logs (nobody else can swap a log for a link) and given to that user at the end.
 */
export function openOut(out: string): OutDir {
  makeDirs(out);
  const dir = HeldDir.open(out, { follow: true });
  const st = fs.fstatSync(dir.fd);
  let logs: HeldDir;
  try {
    logs = dir.sub('logs');
  } catch (error) {
    dir.close();
    throw new PreconditionError(`--out: ${errorMessage(error)}`, 'imgbuild writes its logs to --out/logs; nothing was changed');
  }
  logs.own({ uid: 0, gid: 0 });
  return { dir, logs, owner: { uid: st.uid, gid: st.gid } };
}

/** The end of a build, however it ends: logs/ goes to the owner of --out, the descriptors are closed. */
export function closeOut(o: OutDir): void {
  try {
    if (o.owner.uid !== 0 || o.owner.gid !== 0) o.logs.own(o.owner);
  } finally {
    o.logs.close();
    o.dir.close();
  }
}

/** Starts a log in logs/ with `head` (a link or file of that name is replaced). */
export function openLog(run: BuildRun, name: string, head: string): string {
  return run.out.logs.put(name, { data: head }, run.out.owner);
}

/** A verified wheel into --out, given to its owner. */
export function putWheel(run: BuildRun, file: string): void {
  run.out.dir.put(path.basename(file), { copyOf: file }, run.out.owner);
}

export function newManifest(p: Planned): Manifest {
  const { facts } = p.image;
  return {
    version: 1,
    image: { path: p.plan.image, sha256: '', os: facts.os, glibc: facts.glibc, python: p.image.python, ...(facts.python ? { interpreter: facts.python.path } : {}), arch: facts.arch, wheelTag: facts.wheelTag },
    wheels: [],
  };
}

/** Adds a wheel to the manifest and writes it: a later failure keeps the wheels so far. */
export function record(run: BuildRun, entry: ManifestWheel): void {
  run.written.push(entry);
  run.manifest.wheels = [...run.written];
  writeManifest(run.out.dir, run.manifest, run.out.owner);
}

/** The manifest as the build ends; with --persist, the changed image is hashed for it first. */
export async function writeOutput(run: BuildRun): Promise<Manifest> {
  if (run.req.persist) run.manifest.image.sha256 = await stage(run.ctx.emit, 'hash the image', () => hashFile(run.plan.image));
  run.manifest.wheels = [...run.written];
  return writeManifest(run.out.dir, run.manifest, run.out.owner);
}
