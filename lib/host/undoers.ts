// How each kind of journaled host change is undone. The same functions serve the normal
// unwinding and `imgbuild recover`, so the recovery path is exercised on every run.
import fs from 'node:fs';
import path from 'node:path';
import { removeDmMaps } from './dm.js';
import { hostBinfmtDir, removeEntry } from './binfmt.js';
import { removeCgroup } from './cgroup.js';
import { checkpoint } from '../core/fault.js';
import type { HostChange } from '../undo/journal.js';
import { detachLoop, dropPartitions, diskseq, loopBound } from './loop.js';
import { readMountinfo } from '../parse/mountinfo.js';
import type { Run } from '../core/runner.js';
import { safeRemoveTree } from './safe-remove.js';
import type { Undoer } from '../undo/transaction.js';

export interface UndoEnv {
  run: Run;
  /** A binfmt_misc mount to remove entries through. */
  binfmtDir(): Promise<string>;
  /** Host path of the mounted image root, while a session has it mounted. */
  imageRoot?: () => string | undefined;
  /** Processes whose mount namespaces must also show nothing mounted before a removal. */
  nsPids?: () => number[];
  /** How long a partition a dead session's dying namespace still holds is waited for (recover). */
  releaseMs?: number;
}

export class NeedsImageError extends Error {}

/** The undoer for changes made in the host's own namespace (no session namespace, no mounted image). */
export function hostUndoer(ctx: { run: Run }): Undoer {
  return makeUndoer({ run: ctx.run, binfmtDir: async () => hostBinfmtDir });
}

export function makeUndoer(env: UndoEnv): Undoer {
  return async (change: HostChange, made: boolean) => {
    switch (change.kind) {
      case 'loop':
        if (made) checkpoint('teardown:detach');
        return detachLoop(env.run, change, env.releaseMs);
      case 'partitions': {
        const seq = diskseq(change.device);
        if (seq === change.diskseq && loopBound(change.device)) await dropPartitions(env.run, change.device, env.releaseMs);
        else if (!loopBound(change.device)) await dropPartitions(env.run, change.device, env.releaseMs); // stale nodes on a released loop
        else return `${change.device} is another device now (diskseq ${seq ?? 'unknown'}, ours was ${change.diskseq}): its partition nodes are not ours`;
        return;
      }
      case 'dm-maps':
        return removeDmMaps(env.run, change);
      case 'binfmt':
        if (made) checkpoint('teardown:binfmt');
        if (!made && !fs.existsSync(path.join(await env.binfmtDir(), change.name))) return;
        return removeEntry(await env.binfmtDir(), change);
      case 'created': {
        const root = env.imageRoot?.();
        if (!root) throw new NeedsImageError(`${change.path} was created in the image; the image must be mounted to remove it`);
        return removeCreated(root, change);
      }
      case 'mount':
        return unmountHost(env.run, change);
      case 'workdir':
        return safeRemoveTree(change.path, env.nsPids?.() ?? []);
      case 'cgroup':
        return removeCgroup(change);
    }
  };
}

/** Remove an (empty) placeholder we created in the image, if it is still the same inode. */
export function removeCreated(root: string, change: Extract<HostChange, { kind: 'created' }>): void {
  const p = path.join(root, change.path);
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return;
  }
  if (change.id && st.ino !== change.id.ino) return; // not ours any more
  if (change.type === 'dir') {
    if (!st.isDirectory()) return;
    fs.rmdirSync(p); // only if empty: a mount point we made, never a tree
  } else {
    if (!st.isFile() || st.size !== 0) return; // someone wrote into it: keep their data
    fs.unlinkSync(p);
  }
}

async function unmountHost(run: Run, change: Extract<HostChange, { kind: 'mount' }>): Promise<void> {
  const here = readMountinfo('self').filter((m) => m.target === change.target);
  const ours = here.filter((m) => (change.mountId ? m.id === change.mountId : true) && (!change.device || m.source === change.device));
  if (ours.length === 0) return;
  await run('umount', [change.target], { signal: null });
  if (readMountinfo('self').some((m) => m.id === ours[ours.length - 1]!.id)) throw new Error(`${change.target} is still mounted`);
}

