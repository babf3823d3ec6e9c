// `imgbuild grow IMAGE +SIZE`, the host work: the checks that can refuse, the image's lock, a
// journaled transaction, and each stage (check, extend, move the backup GPT, grow, resize).
import fs from 'node:fs';
import path from 'node:path';
import { hostUndoer } from '../host/undoers.js';
import type { Context } from '../core/context.js';
import { CleanupError, interruptedBy, PreconditionError, StepError, tailLines } from '../core/errors.js';
import { stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import { sameFile } from '../core/identity.js';
import { type ImageFile, openImage, readPartitionTable } from '../host/image.js';
import { rawImage } from '../host/unpack-image.js';
import { listJournals } from '../undo/journal.js';
import { attachLoop, listLoops, loopsOfImage } from '../host/loop.js';
import { holdLock } from '../host/lock.js';
import { inUseError, lockHolder } from '../host/namespace.js';
import { formatBytes } from '../core/units.js';
import type { Transaction } from '../undo/transaction.js';
import { type OpenTransaction, openTransaction } from '../undo/open.js';
import { type FsSize, type GrowPlan, type GrowResult, type SizeSpec, checkHostSpace, fsckVerdict, parseDumpe2fsHeader, parseSize, planGrow, repairCommand, sfdiskGrowArgs, sfdiskGrowInput, sfdiskRelocateArgs } from './grow-plan.js';

export interface GrowOptions {
  image: string;
  /** "+512M", "2G", ... or a parsed spec. */
  size: string | SizeSpec;
}

export async function growImage(ctx: Context, o: GrowOptions): Promise<GrowResult> {
  const { emit, run } = ctx;
  const spec = typeof o.size === 'string' ? parseSize(o.size) : o.size;
  const abs = (await rawImage(ctx, o.image, { writable: true })).path;
  if (fs.statSync(abs, { throwIfNoEntry: false })?.isBlockDevice()) {
    throw new PreconditionError(`${abs} is a block device; imgbuild grow works on image files`, 'for a card or disk use growpart and resize2fs');
  }
  // Every check that can refuse runs before anything starts; under the lock they run again.
  const first = await stage(emit, 'read partition table', () => openImage(run, abs));
  const draft = planGrow(first, spec);
  const hostDir = path.dirname(first.path);
  const st = fs.statfsSync(hostDir);
  checkHostSpace(draft, st.bavail * st.bsize, hostDir);
  if (lockHolder(first.path)) throw inUseError(first.path, ctx.stateDir);
  await refuseIfAttached(ctx, first);

  const unlock = await stage(emit, 'lock image', () => lockImage(ctx, first.path));
  let t: OpenTransaction;
  try {
    t = openTransaction(ctx, { verb: 'grow', image: { id: first.id, path: first.path }, undoer: hostUndoer(ctx), stage: true });
  } catch (error) {
    await unlock();
    throw error;
  }
  t.tx.defer('release the image lock', unlock);
  let result: GrowResult;
  try {
    result = await growLocked(ctx, t.tx, first, spec);
  } catch (error) {
    await t.close(error);
    throw error;
  }
  await t.close();
  return result;
}

async function growLocked(ctx: Context, tx: Transaction, first: ImageFile, spec: SizeSpec): Promise<GrowResult> {
  const { emit, run } = ctx;
  const image = await openImage(run, first.path);
  if (!sameFile(image.id, first.id)) throw new PreconditionError(`${first.path} was replaced while imgbuild grow started`, 'run it again');
  await refuseIfAttached(ctx, image);
  const plan = planGrow(image, spec);
  const n = plan.partition;
  emit({ kind: 'info', message: `${plan.image} grows sparse by ${formatBytes(plan.newFileSize - plan.fileSize)}: host space is used only as the filesystem fills` });

  const checked = await stage(emit, `check the filesystem on partition ${n}`, () =>
    withLoop(tx, image, plan.start, plan.partitionSize, async (dev) => {
      checkpoint('grow:check');
      const fixed = await fsck(ctx, dev, '-p', 'before growing anything', plan);
      return { fixed, size: await fsSize(ctx, dev) };
    }),
  );
  if (checked.fixed) emit({ kind: 'warn', message: `e2fsck fixed errors in the filesystem on partition ${n} before it grew` });

  stopIfAborted(ctx);
  await stage(emit, `extend the image file to ${formatBytes(plan.newFileSize)}`, async () => {
    if (fs.statSync(plan.image).size !== plan.fileSize) throw new StepError(`${plan.image} changed size while it was locked`);
    await run('truncate', ['--no-create', '--size', String(plan.newFileSize), plan.image], { signal: null });
  });
  if (plan.relocateBackupGpt) {
    stopIfAborted(ctx);
    await stage(emit, 'move the backup GPT to the new end', () => run('sfdisk', sfdiskRelocateArgs(plan.image), { signal: null }));
  }
  stopIfAborted(ctx);
  const grown = await stage(emit, `grow partition ${n} to the end of the image`, () => growPartition(ctx, plan));

  stopIfAborted(ctx);
  const resized = await stage(emit, `resize the filesystem on partition ${n}`, () =>
    withLoop(tx, image, plan.start, grown, async (dev) => {
      await fsck(ctx, dev, '-y', 'resize2fs needs a freshly checked filesystem', { ...plan, partitionSize: grown });
      checkpoint('grow:resize');
      await run('resize2fs', [dev], { signal: null });
      const r = await run('e2fsck', ['-f', '-n', dev], { allowFailure: true, signal: null });
      if (r.exitCode !== 0) throw new StepError(`e2fsck -f -n found errors on partition ${n} after resize2fs (exit ${r.exitCode})\n${tailLines(r.all, 20)}`, `check it by hand: ${repairCommand({ ...plan, partitionSize: grown })}`);
      return fsSize(ctx, dev);
    }),
  );
  return {
    image: plan.image,
    table: plan.table,
    partition: n,
    fstype: plan.fstype,
    start: plan.start,
    file: { before: plan.fileSize, after: plan.newFileSize },
    partitionSize: { before: plan.partitionSize, after: grown },
    filesystem: {
      blockSize: resized.blockSize,
      before: { blocks: checked.size.blocks, freeBlocks: checked.size.freeBlocks },
      after: { blocks: resized.blocks, freeBlocks: resized.freeBlocks },
    },
    fsckFixed: checked.fixed,
  };
}

// Take the image's flock, the one sessions take (lib/lock.ts). No namespace: a private mount
// namespace would pin every host mount (a kept `imgbuild mount` of another image) while it lives.
async function lockImage(ctx: Context, image: string): Promise<() => Promise<void>> {
  const lock = await holdLock(ctx, image, image, () => inUseError(image, ctx.stateDir));
  return () => lock.release();
}

// In use: a loop over the image (an `imgbuild mount`, another tool), or a kept mount's journal.
async function refuseIfAttached(ctx: Context, image: ImageFile): Promise<void> {
  const loops = loopsOfImage(await listLoops(ctx.run), image.id);
  if (loops.length > 0) {
    throw new PreconditionError(
      `${image.path} is attached as ${loops.map((l) => l.name).join(', ')}; it cannot grow while in use`,
      'unmount it first (imgbuild umount DIR for an imgbuild mount, losetup -d for a loop you made), or run imgbuild recover after a crash',
    );
  }
  const kept = listJournals(ctx.stateDir).find((j) => j.kept && sameFile(j.begin?.image, image.id));
  if (kept) throw new PreconditionError(`${image.path} is mounted at ${kept.kept} by imgbuild`, `imgbuild umount ${kept.kept}`);
}

// A read-write loop over one partition, journaled; detached before returning (on error the caller's unwinding does it).
async function withLoop<T>(tx: Transaction, image: ImageFile, offset: number, sizelimit: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const { device } = await attachLoop(tx, { image: image.id, imagePath: image.path, offset, sizelimit, readOnly: false });
  const value = await fn(device);
  const failed = await tx.stack.unwindTop(1);
  if (failed.length > 0) throw new CleanupError(failed);
  return value;
}

// e2fsck -f with -p (only safe fixes) or -y; true if it fixed something, a StepError if errors remain.
async function fsck(ctx: Context, dev: string, mode: '-p' | '-y', why: string, plan: GrowPlan): Promise<boolean> {
  // Killing e2fsck halfway through a repair can do more harm than the repair: let it finish.
  const r = await ctx.run('e2fsck', ['-f', mode, dev], { allowFailure: true, signal: null });
  const verdict = fsckVerdict(r.exitCode);
  if (verdict === 'failed') {
    throw new StepError(
      `e2fsck -f ${mode} (${why}) left errors or failed (exit ${r.exitCode})${mode === '-p' ? '; nothing was grown' : ''}\n${tailLines(r.all, 20)}`,
      `repair the filesystem by hand, then grow again: ${repairCommand(plan)}`,
    );
  }
  return verdict === 'fixed';
}


async function fsSize(ctx: Context, dev: string): Promise<FsSize> {
  return parseDumpe2fsHeader((await ctx.run('dumpe2fs', ['-h', dev], { quiet: true })).stdout);
}

async function growPartition(ctx: Context, plan: GrowPlan): Promise<number> {
  await ctx.run('sfdisk', sfdiskGrowArgs(plan.image, plan.partition), { input: sfdiskGrowInput, signal: null });
  const table = await readPartitionTable(ctx.run, plan.image, plan.newFileSize);
  const p = table.partitions.find((q) => q.number === plan.partition);
  if (!p || p.start !== plan.start || p.size <= plan.partitionSize) {
    const now = p ? `start ${p.start}, size ${p.size}` : 'gone';
    throw new StepError(
      `sfdisk did not grow partition ${plan.partition} in place (was start ${plan.start}, size ${plan.partitionSize}; now ${now})`,
      `the filesystem was not touched; restore the entry with: echo 'start=${plan.start / plan.sectorSize}, size=${plan.partitionSize / plan.sectorSize}' | sfdisk -N ${plan.partition} ${plan.image}`,
    );
  }
  return p.size;
}

function stopIfAborted(ctx: Context): void {
  if (!ctx.signal.aborted) return;
  throw interruptedBy(ctx.signal);
}
