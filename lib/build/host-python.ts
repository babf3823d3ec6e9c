// --accel full in the build: the wheel front end runs under the host Python the accel binds
// (accel/python.ts) instead of the image's emulated one. When the backend needed the board's own
// compiled code (sitecustomize.py records each such import in IMGBUILD_TARGET_CODE), the target is
// built again under the emulated Python, whatever the first run made of the ImportError.
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { RunResult } from '../core/runner.js';
import { readHead, resolveInRoot } from '../host/safe-path.js';
import { isWheelFrontend } from '../targets/local.js';
import type { TargetPlan } from '../targets/index.js';
import type { Chroot } from './chroot.js';
import type { BuildRun } from './run.js';
import { builtWheels } from './verify.js';
import { slug, sourceDir } from './workspace.js';

/** Runs one build command; a front end command under the host Python when there is one. Returns the result and where Python ran. */
export async function runCommand(run: BuildRun, chroot: Chroot, t: TargetPlan, cmd: string[], o: { env: Record<string, string>; log: string }): Promise<{ r: RunResult; python?: string }> {
  const src = sourceDir(run, t);
  const host = chroot.python;
  if (!host || !isWheelFrontend(cmd)) return { r: await chroot.exec(cmd, { env: o.env, cwd: src.inner, log: o.log }) };
  // A name of its own each run, so nothing of the workspace (the build's to rearrange) is removed from the host.
  const record = `/workspace/.imgbuild/target-code-${slug(t)}-${crypto.randomBytes(6).toString('hex')}`;
  const first = await chroot.exec([host.inner, ...cmd.slice(1)], { env: { ...o.env, IMGBUILD_TARGET_CODE: record }, cwd: src.inner, log: o.log });
  const needed = targetCode(run.dirs.build, record);
  if (needed.length === 0) return { r: first, python: host.note };
  const why = `the build ran the board's own code under the host Python (${needed[0]}${needed.length > 1 ? `, and ${needed.length - 1} more` : ''})`;
  run.ctx.emit({ kind: 'warn', message: `${t.id}: ${why}: building it again under the image's emulated Python` });
  fs.appendFileSync(o.log, `\n# imgbuild: ${why}; building again under the image's emulated Python\n`);
  // The wheels of the first run go; the objects it compiled (the same compilers') are reused.
  for (const w of builtWheels(src.host, t.wheelDir, t.id)) fs.rmSync(w, { force: true });
  return { r: await chroot.exec(cmd, { env: o.env, cwd: src.inner, log: o.log }), python: `emulated: ${why}` };
}

// The imports the host Python could not do, one a line. The file is the build's: resolved inside
// the workspace, read without following links.
function targetCode(buildDir: string, inner: string): string[] {
  const r = resolveInRoot(buildDir, inner.slice('/workspace'.length));
  if (r.type !== 'file') return [];
  let text: string;
  try {
    text = readHead(r.host, 64 * 1024).toString('utf8');
  } catch {
    return [];
  }
  return [...new Set(text.split('\n').map((l) => l.trim()).filter(Boolean))];
}
