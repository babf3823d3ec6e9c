// --accel full in the build: the wheel front end runs under the host Python the accel binds
// (accel/python.ts) instead of the image's emulated one. When the backend needed the board's own
// compiled code (sitecustomize.py records each such import in IMGBUILD_TARGET_CODE), the target is
// built again under the emulated Python, whatever the first run made of the ImportError.
import fs from 'node:fs';
import path from 'node:path';
import type { RunResult } from '../core/runner.js';
import { readHead } from '../host/safe-path.js';
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
  const record = { inner: `/workspace/.imgbuild/target-code-${slug(t)}`, host: path.join(run.dirs.build, '.imgbuild', `target-code-${slug(t)}`) };
  fs.rmSync(record.host, { force: true });
  const first = await chroot.exec([host.inner, ...cmd.slice(1)], { env: { ...o.env, IMGBUILD_TARGET_CODE: record.inner }, cwd: src.inner, log: o.log });
  const needed = targetCode(record.host);
  if (needed.length === 0) return { r: first, python: host.note };
  const why = `the build ran the board's own code under the host Python (${needed[0]}${needed.length > 1 ? `, and ${needed.length - 1} more` : ''})`;
  run.ctx.emit({ kind: 'warn', message: `${t.id}: ${why}: building it again under the image's emulated Python` });
  fs.appendFileSync(o.log, `\n# imgbuild: ${why}; building again under the image's emulated Python\n`);
  // The wheels of the first run go; the objects it compiled (the same compilers') are reused.
  for (const w of builtWheels(src.host, t.wheelDir, t.id)) fs.rmSync(w, { force: true });
  return { r: await chroot.exec(cmd, { env: o.env, cwd: src.inner, log: o.log }), python: `emulated: ${why}` };
}

// The imports the host Python could not do, one a line (the file is the build's; read without following links).
function targetCode(file: string): string[] {
  let text: string;
  try {
    text = readHead(file, 64 * 1024).toString('utf8');
  } catch {
    return [];
  }
  return [...new Set(text.split('\n').map((l) => l.trim()).filter(Boolean))];
}
