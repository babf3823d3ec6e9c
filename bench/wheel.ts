// Wheel builds through imgbuild's own build verb: a cold build, a rebuild with a warm ccache (the
// wheel cache bypassed) and a repeat answered from the wheel cache, each timed as a whole.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { safeRemoveTree } from '../lib/host/safe-remove.js';
import type { Capabilities } from './cli-help.js';
import { type Bench, timeCommand } from './measure.js';
import type { WheelResult } from './report.js';
import { addRep, type Measured } from './stats.js';

export interface WheelPlan {
  /** The project's extracted tree. */
  tree: string;
  project: string;
  reps: number;
  say: (line: string) => void;
  stopping: () => boolean;
}

const compiled = /\.(c|cc|cpp|cxx)$/;

/**
 * Make every translation unit new to ccache (and the tree new to the wheel cache): a unique
 * string survives preprocessing, where a comment would not.
 */
export function addNonce(dir: string, nonce: string): number {
  let n = 0;
  const walk = (d: string) => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && compiled.test(e.name)) {
        fs.appendFileSync(p, `\nstatic const char imgbuild_bench_nonce_${nonce}[] __attribute__((unused)) = "${nonce}";\n`);
        n++;
      }
    }
  };
  walk(dir);
  return n;
}

export async function measureWheel(b: Bench, caps: Capabilities, p: WheelPlan): Promise<WheelResult> {
  const notes: string[] = [];
  const mode = caps.buildAccel.includes('cross') ? 'cross' : caps.buildHasAccel ? (caps.buildAccel[0] ?? 'none') : 'none';
  const accel = caps.buildHasAccel ? ['--accel', mode] : [];
  if (!caps.buildHasAccel) notes.push('this imgbuild has no --accel for builds: everything is emulated and ccache (accel modes only) is not in play');
  const bypass = caps.noWheelCache ? [caps.noWheelCache] : [];
  if (!caps.noWheelCache) notes.push('this imgbuild has no option to bypass the wheel cache: the warm rebuild changes a file that is not compiled instead');

  const result: Record<'cold' | 'warm' | 'cached', Measured> = { cold: { kind: 'ok', seconds: [] }, warm: { kind: 'ok', seconds: [] }, cached: { kind: 'ok', seconds: [] } };
  const [node, ...cli] = b.imgbuild;
  for (let rep = 0; rep < p.reps && !p.stopping(); rep++) {
    const base = path.join(b.work, 'wheel', String(rep));
    safeRemoveTree(base);
    const dir = path.join(base, path.basename(p.tree));
    fs.mkdirSync(base, { recursive: true });
    await b.run('cp', ['-a', p.tree, dir], { quiet: true });
    const nonce = crypto.randomBytes(6).toString('hex');
    const files = addNonce(dir, nonce);
    // In the log directory, so each build's logs/ and manifest outlive the scratch directory.
    const out = path.join(b.logs, `wheel-${rep + 1}`);
    const build = (extra: string[]) => timeCommand(b, node!, [...cli, b.image, '--target', `local:${dir}`, '--out', out, ...accel, ...extra]);
    const step = async (key: 'cold' | 'warm' | 'cached', extra: string[]) => {
      if (p.stopping() || result[key].kind !== 'ok') return;
      const o = await build(extra);
      result[key] = o.ok ? addRep(result[key], o.seconds) : { kind: 'failed', reason: `${o.reason} (logs: ${out}/logs)` };
      p.say(`  ${p.project} ${key} #${rep + 1}: ${o.ok ? `${o.seconds.toFixed(2)} s` : 'failed'}`);
    };
    // Cold: a source no cache has seen, built and stored; then the same build again, which the
    // wheel cache answers; then a rebuild past the wheel cache, which ccache answers.
    await step('cold', []);
    await step('cached', []);
    if (!caps.noWheelCache) fs.writeFileSync(path.join(dir, 'imgbuild-bench-rebuild.txt'), `${nonce}-warm\n`);
    if (caps.buildHasAccel) await step('warm', bypass);
    else result.warm = { kind: 'skipped', reason: 'ccache is used in accel modes only' };
    if (rep === 0) notes.push(`each repetition builds a fresh copy with a unique string added to its ${files} C/C++ files, so the cold build misses ccache`);
  }
  return { project: p.project, mode: caps.buildHasAccel ? mode : 'none (emulated)', ...result, notes };
}
