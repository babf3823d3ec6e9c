// A limit on the number of processes a build may have at once (a fork bomb, a runaway make -j):
// a pids cgroup of our own, in cgroup v2 (the memory cgroup's own directory when there is one) or
// the v1 pids hierarchy. Made and removed as a journaled host change, like the memory cgroup.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError, UsageError } from '../core/errors.js';
import { fileId } from '../core/identity.js';
import { readMountinfo } from '../parse/mountinfo.js';
import type { Transaction } from '../undo/transaction.js';
import { type CgroupFacts, cgroupDir, type MemoryCgroup, parseFlatKeyed, parseProcCgroup, readOrUndefined } from './cgroup.js';

export type PidsProbe = { ok: true; version: 1 | 2; parent: string } | { ok: false; reason: string };

/** Pure: where children of our cgroup can get a pids limit: v2 when delegated there, else v1's pids hierarchy. */
export function choosePidsCgroup(f: CgroupFacts): PidsProbe {
  const words = (dir: string, file: string) => (f.read(path.join(dir, file)) ?? '').trim().split(/\s+/);
  const v2 = f.membership.find((m) => m.id === 0 && m.controllers.length === 0);
  for (const m of v2 ? f.mounts.filter((x) => x.fstype === 'cgroup2') : []) {
    const dir = cgroupDir(m, v2!.path);
    if (dir && words(dir, 'cgroup.subtree_control').includes('pids')) return { ok: true, version: 2, parent: dir };
  }
  const v1 = f.membership.find((m) => m.controllers.includes('pids'));
  for (const m of v1 ? f.mounts.filter((x) => x.fstype === 'cgroup' && x.superOptions.split(',').includes('pids')) : []) {
    const dir = cgroupDir(m, v1!.path);
    if (dir && f.read(path.join(dir, 'cgroup.procs')) !== undefined) return { ok: true, version: 1, parent: dir };
  }
  return { ok: false, reason: 'no pids controller for our cgroup (cgroup v2 pids not delegated, no v1 pids hierarchy)' };
}

export function probePidsCgroup(): PidsProbe {
  const text = readOrUndefined('/proc/self/cgroup');
  if (text === undefined) return { ok: false, reason: 'no /proc/self/cgroup: the kernel has no cgroups' };
  return choosePidsCgroup({ membership: parseProcCgroup(text), mounts: readMountinfo('self'), read: readOrUndefined });
}

export class PidsLimit {
  constructor(
    /** The cgroup's directory (the memory cgroup's own in v2, when both are there). */
    readonly dir: string,
    readonly max: number,
    /** Whether commands must be moved into it separately (a cgroup of its own, not the memory one). */
    readonly ownCgroup: boolean,
  ) {}

  get procsFile(): string {
    return path.join(this.dir, 'cgroup.procs');
  }

  /** How often a fork was refused at the limit (pids.events "max"), read before the undo. */
  hits(): number {
    return parseFlatKeyed(readOrUndefined(path.join(this.dir, 'pids.events')) ?? '').get('max') ?? 0;
  }
}

/**
 * Limit the session's commands to `max` processes: in the memory cgroup's own directory when that
 * is a v2 cgroup with pids, else a cgroup of our own (imgbuild-SESSION in the pids hierarchy),
 * journaled before it is made and removed by the transaction (killing what is left in it).
 */
export async function createPidsLimit(tx: Transaction, o: { session: string; max: number; memory?: MemoryCgroup; probe?: PidsProbe }): Promise<PidsLimit> {
  if (!/^[\w.-]+$/.test(o.session)) throw new UsageError(`bad session id for a cgroup name: ${o.session}`);
  if (!Number.isSafeInteger(o.max) || o.max < 16) throw new UsageError(`pids limit ${o.max}: give a whole number of at least 16`);
  const probe = o.probe ?? probePidsCgroup();
  if (!probe.ok) throw new PreconditionError(`no pids limit possible on this host: ${probe.reason}`, 'run with --pids-limit none, or on a host with the pids cgroup controller');
  if (o.memory?.version === 2 && probe.version === 2) {
    // One v2 cgroup for both: its pids.max is there when the pids controller is delegated to it.
    if (!fs.existsSync(path.join(o.memory.dir, 'pids.max'))) throw new PreconditionError(`no pids limit possible on this host: the pids controller is not enabled for ${o.memory.dir}`, 'run with --pids-limit none');
    fs.writeFileSync(path.join(o.memory.dir, 'pids.max'), String(o.max));
    return new PidsLimit(o.memory.dir, o.max, false);
  }
  const dir = path.join(probe.parent, `imgbuild-${o.session}`);
  if (fs.existsSync(dir)) throw new PreconditionError(`pids cgroup ${dir} already exists`, 'a session id is used once: is another imgbuild using it?');
  await tx.change(`remove pids cgroup ${dir}`, { kind: 'cgroup', path: dir }, async () => {
    fs.mkdirSync(dir);
    return { kind: 'cgroup', path: dir, id: fileId(dir) };
  });
  fs.writeFileSync(path.join(dir, 'pids.max'), String(o.max));
  return new PidsLimit(dir, o.max, true);
}
