// What the build leaves in --out: the wheels, logs/ and manifest.json (written again after each
// wheel), every file given to whoever owns --out.
import fs from 'node:fs';
import path from 'node:path';
import { stage } from '../core/events.js';
import { hashFile } from '../core/hash.js';
import { makeDirs } from '../core/dirs.js';
import { type Manifest, type ManifestWheel, writeManifest } from '../wheel/index.js';
import type { BuildRun, Planned } from './run.js';

/** Makes --out and its logs/; says who owns --out. */
export function openOut(out: string): { logs: string; owner: fs.Stats } {
  makeDirs(out);
  const logs = path.join(out, 'logs');
  makeDirs(logs);
  const owner = fs.statSync(out);
  giveTo(logs, owner);
  return { logs, owner };
}

/** Starts a log in logs/ with `head`. */
export function openLog(run: BuildRun, name: string, head: string): string {
  const log = path.join(run.dirs.logs, name);
  fs.writeFileSync(log, head);
  giveTo(log, run.owner);
  return log;
}

/** Files in --out belong to whoever owns --out (the user behind sudo, usually). */
export function giveTo(file: string, owner: fs.Stats): void {
  if (owner.uid === 0 && owner.gid === 0) return;
  try {
    fs.chownSync(file, owner.uid, owner.gid);
  } catch {
    // not ours to give
  }
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
  writeManifest(run.plan.out, run.manifest, run.owner);
}

/** The manifest as the build ends; with --persist, the changed image is hashed for it first. */
export async function writeOutput(run: BuildRun): Promise<Manifest> {
  if (run.req.persist) run.manifest.image.sha256 = await stage(run.ctx.emit, 'hash the image', () => hashFile(run.plan.image));
  run.manifest.wheels = [...run.written];
  return writeManifest(run.plan.out, run.manifest, run.owner);
}
