// Session set-up + tear-down: `imgbuild run IMAGE -- true` against the same mounts made by hand
// (bench/raw-session.sh), both measured in the same run, interleaved.
import path from 'node:path';
import { type Arch, archTable } from '../lib/core/arch.js';
import { qemuInterpreter, registrationLine } from '../lib/host/binfmt.js';
import { openImage, rootCandidates } from '../lib/host/image.js';
import type { Capabilities } from './cli-help.js';
import { type Bench, type Outcome, timeCommand } from './measure.js';
import type { SessionResult } from './report.js';
import { addRep, type Measured } from './stats.js';

export interface SessionPlan {
  reps: number;
  arch: Arch;
  rawScript: string;
  say: (line: string) => void;
  stopping: () => boolean;
}

export async function measureSession(b: Bench, caps: Capabilities, p: SessionPlan): Promise<SessionResult> {
  const image = await openImage(b.run, b.image);
  const root = rootCandidates(image)[0];
  if (!root) throw new Error(`no Linux root partition in ${b.image}`);
  // The host has no usable binfmt entry for the image (imgbuild registers its own each session,
  // here): so does the baseline, under a name of its own.
  const line = registrationLine(`imgbuild-bench-raw-${archTable[p.arch].qemu}`, p.arch, qemuInterpreter(p.arch));
  const [node, ...cli] = b.imgbuild;
  const none = caps.runHasAccel ? ['--accel', 'none'] : [];
  const runs: [keyof SessionResult, () => Promise<Outcome>][] = [
    ['imgbuild', () => timeCommand(b, node!, [...cli, 'run', b.image, ...none, '--', 'true'])],
    ['raw', () => timeCommand(b, 'bash', [p.rawScript, image.path, String(root.start), String(root.size), root.fstype, line])],
    ['node', () => timeCommand(b, node!, [...cli, '--version'])],
  ];
  if (caps.runAccel.includes('cross')) runs.push(['imgbuildAccel', () => timeCommand(b, node!, [...cli, 'run', b.image, '--accel', 'cross', '--', 'true'])]);
  if (caps.runAccel.includes('full')) runs.push(['imgbuildFull', () => timeCommand(b, node!, [...cli, 'run', b.image, '--accel', 'full', '--', 'true'])]);
  const result: Required<Record<keyof SessionResult, Measured>> = {
    imgbuild: { kind: 'ok', seconds: [] },
    raw: { kind: 'ok', seconds: [] },
    node: { kind: 'ok', seconds: [] },
    imgbuildAccel: caps.runAccel.includes('cross') ? { kind: 'ok', seconds: [] } : { kind: 'skipped', reason: 'this imgbuild has no --accel cross' },
    imgbuildFull: caps.runAccel.includes('full') ? { kind: 'ok', seconds: [] } : { kind: 'skipped', reason: 'this imgbuild has no --accel full' },
  };
  // One untimed round first: the image's blocks and imgbuild's modules come into the page cache.
  for (const [, fn] of runs) await fn();
  for (let i = 0; i < p.reps && !p.stopping(); i++) {
    for (const [key, fn] of runs) {
      const o = await fn();
      result[key] = o.ok ? addRep(result[key], o.seconds) : { kind: 'failed', reason: o.reason };
    }
  }
  p.say(`  sessions: ${p.reps} rounds of ${runs.map(([k]) => k).join(', ')}`);
  return result;
}

export const rawScriptPath = (repo: string) => path.join(repo, 'bench', 'raw-session.sh');
