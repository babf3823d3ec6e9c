// Running one timed build (on the host, or in the image through `imgbuild run`) and one timed
// command, for the benchmark driver.
import fs from 'node:fs';
import path from 'node:path';
import type { Run } from '../lib/core/runner.js';
import { safeRemoveTree } from '../lib/host/safe-remove.js';
import { wheelFrontendSource } from '../lib/targets/local.js';
import { parseTiming, timedScript } from './stats.js';
import { buildExports } from './workloads.js';

export interface Bench {
  run: Run;
  /** argv prefix that starts this checkout's imgbuild: [node, dist/imgbuild.mjs] */
  imgbuild: string[];
  image: string;
  /** Host scratch directory (removed at the end). */
  work: string;
  /** Where the last build log of each workload and mode is kept. */
  logs: string;
  jobs: number;
  /** The host builds' whole environment (no user config, no pyenv shims). */
  hostEnv: Record<string, string>;
}

export type Outcome = { ok: true; seconds: number } | { ok: false; reason: string };

/** A fresh copy of `tree` at `dest` (a build must never see objects of the previous one). */
async function freshCopy(b: Bench, tree: string, dest: string): Promise<void> {
  safeRemoveTree(dest);
  fs.mkdirSync(path.dirname(dest), { recursive: true });
  await b.run('cp', ['-a', tree, dest], { quiet: true });
}

function keepLog(b: Bench, from: string, name: string): string {
  const to = path.join(b.logs, `${name}.log`);
  try {
    fs.copyFileSync(from, to);
  } catch {
    fs.writeFileSync(to, '(no log: the build did not start)\n');
  }
  return to;
}

function failure(b: Bench, log: string, what: string): Outcome {
  const tail = fs.existsSync(log) ? fs.readFileSync(log, 'utf8').trim().split('\n').slice(-3).join(' / ') : '';
  return { ok: false, reason: `${what}; log ${log}${tail ? `: ${tail}` : ''}` };
}

/** Build `tree` on the host with `command`; only the command is timed. */
export async function hostBuild(b: Bench, tree: string, command: string, name: string): Promise<Outcome> {
  const dir = path.join(b.work, 'host', path.basename(tree));
  await freshCopy(b, tree, dir);
  const log = path.join(b.work, 'host', 'build.log');
  const r = await b.run('sh', ['-c', timedScript(dir, command, log, { ...buildExports, WHEEL_FRONTEND: wheelFrontendSource })], { env: b.hostEnv, extendEnv: false, allowFailure: true, quiet: true });
  const kept = keepLog(b, log, name);
  const t = parseTiming(r.stdout);
  if (!t) return failure(b, kept, `no timing (exit ${r.exitCode}): ${r.all.trim().split('\n').slice(-2).join(' / ')}`);
  if (t.status !== 0) return failure(b, kept, `build exited ${t.status}`);
  return { ok: true, seconds: t.seconds };
}

/** Build `tree` in the image with `command` through `imgbuild run` (plus `args`, e.g. --accel cross). */
export async function chrootBuild(b: Bench, tree: string, command: string, args: readonly string[], name: string): Promise<Outcome> {
  const ws = path.join(b.work, 'ws');
  const inner = `/workspace/${path.basename(tree)}`;
  await freshCopy(b, tree, path.join(ws, path.basename(tree)));
  fs.copyFileSync(wheelFrontendSource, path.join(ws, 'build-wheel.py'));
  const log = path.join(ws, 'build.log');
  fs.rmSync(log, { force: true });
  const [node, ...cli] = b.imgbuild;
  const argv = [...cli, 'run', b.image, '--workspace', ws, ...args, '--', 'sh', '-c', timedScript(inner, command, '/workspace/build.log', { ...buildExports, WHEEL_FRONTEND: '/workspace/build-wheel.py' })];
  const r = await b.run(node!, argv, { allowFailure: true, quiet: true });
  const kept = keepLog(b, log, name);
  const t = parseTiming(r.stdout);
  if (!t) return failure(b, kept, `imgbuild run exited ${r.exitCode} without a timing: ${r.all.trim().split('\n').slice(-3).join(' / ')}`);
  if (t.status !== 0) return failure(b, kept, `build exited ${t.status}`);
  if (r.exitCode !== 0) return { ok: false, reason: `the build went well but imgbuild run exited ${r.exitCode}: ${r.stderr.trim().split('\n').slice(-2).join(' / ')}` };
  return { ok: true, seconds: t.seconds };
}

/** Wall time of one command that must succeed. */
export async function timeCommand(b: Bench, file: string, args: readonly string[]): Promise<Outcome> {
  const t0 = performance.now();
  const r = await b.run(file, args, { allowFailure: true, quiet: true });
  const seconds = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) return { ok: false, reason: `exit ${r.exitCode}: ${r.all.trim().split('\n').slice(-3).join(' / ')}` };
  return { ok: true, seconds };
}
