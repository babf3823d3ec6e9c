// The workspace: where it is by default, checks that it can be written and has room, its lock,
// a fresh build tree every run, and clearing it after a good build.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { errorMessage, PreconditionError } from '../core/errors.js';
import { human } from '../core/units.js';
import { type HeldLock, holdLock } from '../host/lock.js';
import { pseudoFilesystem } from '../host/safe-path.js';
import { makeDirs } from '../core/dirs.js';
import { safeRemoveTree } from '../host/safe-remove.js';
import type { TargetPlan } from '../targets/index.js';
import { wheelFrontend, wheelFrontendSource } from '../targets/local.js';
import { newManifest, openOut } from './output.js';
import { workspaceBytes } from './plan.js';
import type { BuildRun, Inputs, Planned } from './run.js';

/** One default workspace per image path, so builds for two images can run at once. */
export function defaultWorkspace(cacheDir: string, image: string): string {
  const base = path.basename(image).replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 40) || 'image';
  const hash = crypto.createHash('sha256').update(image).digest('hex').slice(0, 10);
  return path.join(cacheDir, 'work', `${base}-${hash}`);
}

/** A file-system-safe name for a target's source and log. */
export function slug(plan: TargetPlan): string {
  return `${plan.name}${plan.version ? `-${plan.version}` : ''}`.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** Where a target's source is copied: in the build tree on the host, and as the chroot sees it. */
export function sourceDir(run: BuildRun, t: TargetPlan): { host: string; inner: string } {
  return { host: path.join(run.dirs.build, 'src', slug(t)), inner: `/workspace/src/${slug(t)}` };
}

/** Proves `dir` can be made and written, without making it (bad input changes nothing). */
export function checkWritable(dir: string, what: string): void {
  let probe = dir;
  while (!fs.existsSync(probe)) {
    const up = path.dirname(probe);
    if (up === probe) break;
    probe = up;
  }
  const fail = (why: string) => new PreconditionError(`${what} ${dir} is not writable: ${why}`, `choose a directory you can write to with ${what} DIR`);
  if (!fs.statSync(probe).isDirectory()) throw fail(`${probe} is not a directory`);
  const pseudo = pseudoFilesystem(probe);
  if (pseudo) throw fail(`${probe} is on ${pseudo}, a kernel interface that takes no files`);
  try {
    fs.accessSync(probe, fs.constants.W_OK);
  } catch (error) {
    throw fail(errorMessage(error));
  }
}

export function checkSpace(dir: string, need: number, what: string): void {
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

/** Room for the whole build, then the workspace lock: one build at a time in a workspace. */
export async function lockWorkspace(p: Planned): Promise<HeldLock> {
  const ws = p.plan.workspace;
  checkSpace(ws, workspaceBytes(p.plan), 'the workspace');
  makeDirs(ws);
  return holdLock(p.ctx, path.join(ws, '.imgbuild.lock'), `workspace ${ws}`);
}

/** A good build clears a default workspace; a failed one leaves its tree to look at. */
export async function releaseWorkspace(ctx: Context, inputs: Inputs, lock: HeldLock, ok: boolean): Promise<void> {
  if (ok && inputs.defaultWorkspace) clearWorkspace(inputs.workspace);
  else {
    const n = defangTree(inputs.workspace, ['build', 'overlay', 'staged']);
    const harmless = n ? ` (${n} setuid/setgid file(s) and device node(s) made harmless)` : '';
    if (!ok) ctx.emit({ kind: 'info', message: `the build tree stays in ${inputs.workspace} until the next build${harmless}` });
  }
  await lock.release();
}

/**
 * What build code left in a kept tree must not serve a local user on the host: setuid and setgid
 * bits are cleared and device nodes, FIFOs and sockets removed, below `ws`/NAME for each name. The
 * walk follows no link and stays on the tree's filesystem. Returns how many it changed.
 */
export function defangTree(ws: string, names: readonly string[]): number {
  let changed = 0;
  const walk = (dir: Buffer, dev: number) => {
    for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
      const p = Buffer.concat([dir, Buffer.from('/'), name]);
      const st = fs.lstatSync(p);
      if (st.dev !== dev) continue;
      if (st.isDirectory()) {
        if (st.mode & 0o6000) fs.chmodSync(p, st.mode & 0o1777);
        walk(p, dev);
      } else if (st.isFile() && st.mode & 0o6000) {
        fs.chmodSync(p, st.mode & 0o1777);
        changed++;
      } else if (st.isBlockDevice() || st.isCharacterDevice() || st.isFIFO() || st.isSocket()) {
        fs.unlinkSync(p);
        changed++;
      }
    }
  };
  for (const n of names) {
    const top = path.join(ws, n);
    const st = fs.lstatSync(top, { throwIfNoEntry: false });
    if (st?.isDirectory()) walk(Buffer.from(top), st.dev);
  }
  return changed;
}

function clearWorkspace(ws: string): void {
  for (const name of ['build', 'overlay', 'staged']) safeRemoveTree(path.join(ws, name));
}

/** A fresh build layer and source copies every run (nothing of an earlier run leaks in), and --out. */
export function freshWorkspace(p: Planned): BuildRun {
  const build = path.join(p.plan.workspace, 'build');
  const upper = path.join(p.plan.workspace, 'overlay');
  const staged = path.join(p.plan.workspace, 'staged');
  for (const d of [build, upper, staged]) safeRemoveTree(d);
  // Root's alone: a build may leave setuid files in its tree, and a failed build's tree is kept.
  fs.mkdirSync(build, { recursive: true, mode: 0o700 });
  fs.chmodSync(build, 0o700);
  fs.mkdirSync(path.join(build, 'src'), { recursive: true });
  fs.mkdirSync(path.join(build, 'wheels'), { recursive: true });
  installFrontend(build);
  fs.mkdirSync(upper, { mode: 0o700 });
  // Wheels are taken out of the build tree into here (which the chroot cannot see) before any check.
  fs.mkdirSync(staged, { mode: 0o700 });
  const out = openOut(p.plan.out);
  return { ...p, dirs: { build, upper, logs: out.logs.path, staged }, out, fetched: new Map(), keys: new Map(), hits: new Map(), manifest: newManifest(p), written: [] };
}

// lib/build/build-wheel.py at targets/local.ts wheelFrontend, in the workspace bound at /workspace.
function installFrontend(buildDir: string): void {
  const dest = path.join(buildDir, path.posix.relative('/workspace', wheelFrontend));
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  fs.copyFileSync(wheelFrontendSource, dest);
  fs.chmodSync(dest, 0o644);
}
