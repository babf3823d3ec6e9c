// Binds of host paths into the chroot made as one group: mounted by one process, checked, and
// taken off together (with whatever a recursive bind brought along) by one umount run.
import path from 'node:path';
import type { Namespace } from '../host/namespace.js';
import type { Transaction } from '../undo/transaction.js';

/** One bind into the chroot. */
export interface Bind {
  /** Source path as seen in the session namespace. */
  source: string;
  /** Target path inside the chroot. */
  inner: string;
  /** Writable (then also noexec); read-only otherwise. */
  rw?: boolean;
  /** --rbind: the mounts below the source come along. */
  recursive?: boolean;
}

/** A group of binds, with the words its undo step and its errors use. */
export interface BindGroup {
  binds: readonly Bind[];
  /** The undo step's label, e.g. "remove the host compiler binds". */
  undo: string;
  /** What the group binds, for the error when the batch fails, e.g. "the host compiler". */
  what: string;
  /** One bind of the group, for the errors about a single bind, e.g. "accel bind". */
  noun: string;
}

/**
 * Mount a group of binds in the namespace in one process. The undo is registered under
 * `group.undo` before the batch (a batch cut short still has its binds taken off); it is
 * returned too, to take the binds off early, and does its work once.
 */
export async function mountBindGroup(tx: Transaction, ns: Namespace, root: string, group: BindGroup): Promise<() => Promise<void>> {
  const { binds, noun } = group;
  const nsRoot = (inner: string) => path.join(root, inner);
  const targets = binds.map((b) => nsRoot(b.inner));
  let up = true;
  const remove = async () => {
    if (!up) return;
    // Nothing may run from the binds while they come off.
    await ns.killAll();
    // Newest first, and whatever a recursive bind brought along with it before that bind.
    const below = binds.filter((b2) => b2.recursive).map((b2) => `${nsRoot(b2.inner)}/`);
    const mine = new Set(targets);
    const ours = ns
      .mountinfo()
      .map((m) => m.target)
      .filter((t2) => mine.has(t2) || below.some((d) => t2.startsWith(d)))
      .reverse();
    if (ours.length > 0) {
      const r = await ns.exec('umount', ours, { allowFailure: true, signal: null });
      const left = new Set(ns.mountinfo().map((m) => m.target));
      const still = ours.filter((t2) => left.has(t2));
      if (still.length > 0) throw new Error(`${noun}s still mounted: ${still.join(', ')} (${r.all.trim()})`);
    }
    up = false;
  };
  tx.defer(group.undo, remove);
  const script = binds
    .map((b, i) => `mount ${b.recursive ? '--rbind' : '--bind'} -o ${b.rw ? 'nosuid,nodev,noexec' : 'ro,nosuid,nodev'} "\${${2 * i + 1}}" "\${${2 * i + 2}}" || exit 1`)
    // One line: the namespace holder runs it (see namespace.ts servable).
    .join('; ');
  const args = binds.flatMap((b) => [b.source, nsRoot(b.inner)]);
  const r = await ns.exec('sh', ['-c', script, 'sh', ...args], { allowFailure: true, signal: null });
  if (r.exitCode !== 0) throw new Error(`binding ${group.what} into the chroot failed: ${r.all.trim()}`);
  // `mount --bind -o ro` remounts read-only in a second step: check it held for every bind.
  const mi = new Map(ns.mountinfo().map((m) => [m.target, m]));
  for (const b of binds) {
    const m = mi.get(nsRoot(b.inner));
    if (!m) throw new Error(`${noun} of ${b.inner} did not land`);
    if (!b.rw && !/(^|,)ro(,|$)/.test(m.options)) throw new Error(`${noun} of ${b.inner} is not read-only (${m.options})`);
  }
  return remove;
}
