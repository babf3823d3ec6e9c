// `imgbuild recover`: finish the cleanup of sessions whose process died (kill -9, OOM kill,
// power cut of the controlling terminal). The kernel already dropped their private mounts and
// processes; what remains is in the journal: loops, partition nodes, dm maps, binfmt entries,
// placeholders in the image, host mounts of a half-made kept session, session directories,
// memory cgroups (with anything still running in them).
import fs from 'node:fs';
import path from 'node:path';
import { hostBinfmtDir } from './binfmt.js';
import { hostUndoer, makeUndoer, NeedsImageError, removeCreated } from './undoers.js';
import type { Context } from '../core/context.js';
import { CleanupError, errorMessage } from '../core/errors.js';
import { type ProcessId, processAlive, sameFile, fileId } from '../core/identity.js';
import { waitFor } from '../core/wait.js';
import { type HostChange, Journal, type JournalState, listJournals, type PendingChange, sessionAlive } from '../undo/journal.js';
import { attachLoop } from './loop.js';
import { Namespace } from './namespace.js';
import { openTransaction } from '../undo/open.js';

export interface RecoverAction {
  session: string;
  step: string;
  ok?: boolean;
  error?: string;
  /** Why nothing had to be done (the thing is not ours any more). */
  nothing?: string;
}

export interface RecoverReport {
  sessions: string[];
  actions: RecoverAction[];
  /** Live sessions and kept mounts that were left alone. */
  skipped: string[];
}

export function describeChange(c: HostChange): string {
  switch (c.kind) {
    case 'loop':
      return `detach loop ${c.device ?? '(unknown device)'} of ${c.imagePath}${c.offset ? ` at offset ${c.offset}` : ''}`;
    case 'partitions':
      return `remove partition nodes of ${c.device}`;
    case 'dm-maps':
      return `remove device-mapper maps ${(c.maps ?? []).map((m) => m.name).join(', ') || '(unknown)'} of ${c.imagePath}`;
    case 'binfmt':
      return `remove binfmt entry ${c.name}`;
    case 'created':
      return `remove ${c.path} created in ${c.imagePath ?? 'the image'}`;
    case 'mount':
      return `unmount ${c.target}`;
    case 'workdir':
      return `remove directory ${c.path}`;
    case 'cgroup':
      return `remove memory cgroup ${c.path}`;
  }
}

export async function recover(ctx: Context, o: { dryRun?: boolean } = {}): Promise<RecoverReport> {
  const report: RecoverReport = { sessions: [], actions: [], skipped: [] };
  const journals = listJournals(ctx.stateDir);
  const dead: JournalState[] = [];
  for (const j of journals) {
    const name = path.basename(j.file, '.journal');
    if (j.kept) report.skipped.push(`${name}: kept mount at ${j.kept} (use imgbuild umount ${j.kept})`);
    else if (sessionAlive(j)) report.skipped.push(`${name}: still running (process ${j.begin?.owner.pid})`);
    else dead.push(j);
  }
  if (dead.length === 0) return report;

  let ns: Namespace | undefined;
  const binfmtDir = async () => {
    if (fs.existsSync(path.join(hostBinfmtDir, 'register'))) return hostBinfmtDir;
    ns ??= await Namespace.open(ctx);
    return ns.binfmtDir();
  };
  const undo = makeUndoer({ run: ctx.run, binfmtDir, releaseMs: 30_000 });
  try {
    for (const j of dead) {
      const name = path.basename(j.file, '.journal');
      report.sessions.push(name);
      const journal = Journal.open(j.file);
      if (j.holder && processAlive(j.holder)) {
        const step = `wait for the session's namespace holder (process ${j.holder.pid}) to end`;
        if (o.dryRun) report.actions.push({ session: name, step });
        else if (await holderEnded(j.holder)) report.actions.push({ session: name, step, ok: true });
        else {
          report.actions.push({ session: name, step, ok: false, error: 'it is still running' });
          continue;
        }
      }
      const inImage: PendingChange[] = [];
      let failed = false;
      for (const p of j.pending) {
        const step = describeChange(p.change);
        if (o.dryRun) {
          report.actions.push({ session: name, step });
          continue;
        }
        try {
          const nothing = await undo(p.change, p.made);
          journal.undone(p.seq);
          report.actions.push({ session: name, step, ok: true, ...(nothing ? { nothing } : {}) });
        } catch (error) {
          if (error instanceof NeedsImageError) {
            inImage.push(p);
            continue;
          }
          failed = true;
          report.actions.push({ session: name, step, ok: false, error: errorMessage(error) });
        }
      }
      if (inImage.length > 0) {
        const ok = await removePlaceholders(ctx, journal, inImage, report, name);
        failed ||= !ok;
      }
      if (!o.dryRun && !failed) journal.close();
    }
  } finally {
    await ns?.close();
  }
  return report;
}

/**
 * A dead session's holder ends by itself once its owner's pipe closes, and the kernel then unmounts
 * the session's filesystems; until then the image's partitions are busy. Wait for it; kill it (the
 * PID namespace's init, so everything inside goes) if it lingers, checked by pid and start time.
 */
async function holderEnded(holder: ProcessId): Promise<boolean> {
  if (await waitFor(() => !processAlive(holder), 10_000, { startMs: 10, maxMs: 200 })) return true;
  try {
    if (processAlive(holder)) process.kill(holder.pid, 'SIGKILL');
  } catch {
    // it ended meanwhile
  }
  return waitFor(() => !processAlive(holder), 10_000, { startMs: 10, maxMs: 200 });
}

function unreachable(journal: Journal, items: PendingChange[], report: RecoverReport, name: string, why: string): true {
  for (const p of items) {
    journal.undone(p.seq);
    report.actions.push({ session: name, step: describeChange(p.change), ok: true, nothing: why });
  }
  return true;
}

// Mount the image's root again (private namespace, offset loop) to remove placeholders we made in it.
async function removePlaceholders(ctx: Context, journal: Journal, items: PendingChange[], report: RecoverReport, name: string): Promise<boolean> {
  const first = items[0]!.change as Extract<HostChange, { kind: 'created' }>;
  const fail = (step: string, error: string) => {
    report.actions.push({ session: name, step, ok: false, error });
    return false;
  };
  if (!first.imagePath || !first.image || first.offset === undefined) return fail('remove placeholders in the image', 'the journal does not say where they are');
  // The image deleted or replaced: its placeholders went with it, or stay in a file that is not at
  // this path any more. Nothing here can be undone, and a journal kept for it would block every
  // later session: say what stays where, and close it.
  let id;
  try {
    id = fileId(first.imagePath);
  } catch {
    return unreachable(journal, items, report, name, `${first.imagePath} is gone, and what imgbuild made in it went with it`);
  }
  if (!sameFile(id, first.image)) return unreachable(journal, items, report, name, `${first.imagePath} is another file now (inode differs): the empty placeholders imgbuild made in the old image stay there`);
  const { tx, close } = openTransaction(ctx, { undoer: hostUndoer(ctx) });
  let ok = true;
  try {
    const ns = await Namespace.open(ctx, { lock: first.imagePath });
    tx.defer('end namespace', () => ns.close());
    const { device } = await attachLoop(tx, { image: first.image, imagePath: first.imagePath, offset: first.offset, sizelimit: first.sizelimit ?? 0, readOnly: false });
    const dir = fs.mkdtempSync(path.join(ctx.stateDir, 'repair-'));
    tx.defer('remove repair mount point', () => fs.rmdirSync(dir));
    await ns.exec('mount', ['-t', first.fstype ?? 'ext4', device, dir]);
    tx.defer('unmount repair mount', async () => {
      await ns.exec('umount', [dir], { signal: null });
    });
    for (const p of items) {
      const c = p.change as Extract<HostChange, { kind: 'created' }>;
      const step = describeChange(c);
      try {
        removeCreated(ns.hostPath(dir), c);
        journal.undone(p.seq);
        report.actions.push({ session: name, step, ok: true });
      } catch (error) {
        ok = false;
        report.actions.push({ session: name, step, ok: false, error: errorMessage(error) });
      }
    }
  } catch (error) {
    ok = fail(`remove placeholders in ${first.imagePath}`, errorMessage(error));
  } finally {
    await close().catch((error: unknown) => {
      for (const f of error instanceof CleanupError ? error.failures : [{ step: 'clean up', error }]) ok = fail(f.step, errorMessage(f.error));
    });
  }
  return ok;
}
