// `imgbuild grow IMAGE +SIZE`: make room in a tightly sized image for --persist builds. The
// image file, its last partition and the ext2/3/4 filesystem in it grow together, under the
// image's lock; every loop device is journaled, so `imgbuild recover` can finish after kill -9.
// Growing the file and the partition table is not undone on failure: both are harmless to a
// filesystem that has not grown yet, and the next `grow` finishes the job.
import fs from 'node:fs';
import path from 'node:path';
import { hostUndoer } from '../host/undoers.js';
import type { Context } from '../core/context.js';
import { CleanupError, interruptedBy, PreconditionError, StepError, UsageError, tailLines } from '../core/errors.js';
import { stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import { sameFile } from '../core/identity.js';
import { type ImageFile, type ImagePartition, openImage, readPartitionTable } from '../host/image.js';
import { listJournals } from '../undo/journal.js';
import { attachLoop, listLoops, loopsOfImage } from '../host/loop.js';
import { holdLock } from '../host/lock.js';
import { inUseError, lockHolder } from '../host/namespace.js';
import type { FsType, TableType } from '../parse/partitions.js';
import { shellQuote } from '../core/quote.js';
import { formatBytes } from '../core/units.js';
import type { Transaction } from '../undo/transaction.js';
import { type OpenTransaction, openTransaction } from '../undo/open.js';

// ---- pure decisions ----

/** `+SIZE`: grow by that much; `SIZE`: the image's new total size. */
export type SizeSpec = { kind: 'by' | 'to'; bytes: number; text: string };

const units: Record<string, number> = { K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
const sizeExample = 'for example: imgbuild grow IMAGE +512M (grow by 512 MiB), +1.5G, or 4G (new total size); units K, M, G, T are powers of 1024';

/** Pure: "+512M", "2G", "1.5G", "+64MiB". A unit is required: a bare number is too easy to get wrong. */
export function parseSize(text: string): SizeSpec {
  const m = /^(\+)?(\d+(?:\.\d+)?|\.\d+)([KMGT])(iB)?$/i.exec(text.trim());
  if (!m) throw new UsageError(`bad size ${JSON.stringify(text)}`, sizeExample);
  const bytes = Math.ceil(Number(m[2]) * units[m[3]!.toUpperCase()]!);
  if (bytes <= 0) throw new UsageError(`size ${text} is zero`, sizeExample);
  if (!Number.isSafeInteger(bytes)) throw new UsageError(`size ${text} is too large`, sizeExample);
  return { kind: m[1] ? 'by' : 'to', bytes, text: text.trim() };
}

export interface GrowPlan {
  image: string;
  table: TableType;
  sectorSize: number;
  partition: number;
  fstype: FsType;
  /** Bytes from the start of the image; never changes. */
  start: number;
  partitionSize: number;
  fileSize: number;
  newFileSize: number;
  /** GPT keeps a backup header in the last sectors: it must move to the new end first. */
  relocateBackupGpt: boolean;
}

const extFilesystems: FsType[] = ['ext2', 'ext3', 'ext4'];

/** Pure: what to grow, or why not. The partition to grow is the one that ends last on disk. */
export function planGrow(image: Pick<ImageFile, 'path' | 'size' | 'table' | 'partitions'>, spec: SizeSpec): GrowPlan {
  const { sectorSize } = image.table;
  const wanted = spec.kind === 'by' ? image.size + spec.bytes : spec.bytes;
  // Whole sectors: the table and the filesystem cannot use a partial one.
  const newFileSize = Math.ceil(wanted / sectorSize) * sectorSize;
  if (newFileSize <= image.size) {
    throw new PreconditionError(
      `${image.path} is already ${formatBytes(image.size)}: ${spec.text} would not grow it`,
      'give a larger total size, or +SIZE to grow by an amount (imgbuild grow never shrinks)',
    );
  }
  const last = [...image.partitions].sort((a, b) => a.start + a.size - (b.start + b.size)).at(-1);
  if (!last) throw new PreconditionError(`the partition table of ${image.path} has no partitions`, 'is this a whole-disk image?');
  const layout = describeLayout(image.partitions);
  if (!extFilesystems.includes(last.fstype)) {
    throw new PreconditionError(
      `partition ${last.number} (${last.fstype}) ends last in ${image.path} (${layout}); imgbuild grow only grows an ext2/3/4 partition at the end of the image`,
      'if the root is not the last partition, move or remove the partitions after it with a partitioning tool, or grow by hand (growpart, resize2fs)',
    );
  }
  if (image.table.type === 'mbr' && last.number > 4) {
    throw new PreconditionError(
      `partition ${last.number} of ${image.path} is a logical partition inside an extended one (${layout}); imgbuild grow does not resize extended partitions`,
      'grow the extended partition and then the logical one with a partitioning tool (parted), then resize2fs',
    );
  }
  // An MBR entry holds the size in 32 bits of sectors.
  if (image.table.type === 'mbr' && (newFileSize - last.start) / sectorSize > 0xffffffff) {
    throw new PreconditionError(`an MBR partition cannot be larger than ${formatBytes(0xffffffff * sectorSize)}`, 'grow by less, or convert the image to GPT first (sgdisk --mbrtogpt)');
  }
  return {
    image: image.path,
    table: image.table.type,
    sectorSize,
    partition: last.number,
    fstype: last.fstype,
    start: last.start,
    partitionSize: last.size,
    fileSize: image.size,
    newFileSize,
    relocateBackupGpt: image.table.type === 'gpt',
  };
}

/** Pure: refuse when the host filesystem could not hold the grown part once the image fills up. */
export function checkHostSpace(plan: GrowPlan, free: number, where: string): void {
  const growth = plan.newFileSize - plan.fileSize;
  if (free >= growth) return;
  throw new PreconditionError(
    `not enough free space on the host for ${plan.image} to grow by ${formatBytes(growth)}: ${formatBytes(free)} free in ${where}`,
    'the grown part is sparse and takes host space only as the filesystem in the image fills, but a full image would then fail with I/O errors; free some space, grow by less, or move the image',
  );
}

/** sfdisk argv that grows partition `n` to the end of the image, start unchanged (input: ", +"). */
export function sfdiskGrowArgs(image: string, n: number): string[] {
  // We hold the image's flock in another process: sfdisk must not try to take it. A resized
  // partition keeps every signature on it (--wipe*: never), and the image is a file, not a disk
  // the kernel should re-read.
  return ['--lock=no', '--no-reread', '--no-tell-kernel', '--wipe', 'never', '--wipe-partitions', 'never', '-N', String(n), image];
}

export const sfdiskGrowInput = ', +\n';

export function sfdiskRelocateArgs(image: string): string[] {
  return ['--lock=no', '--relocate', 'gpt-bak-std', image];
}

/** Pure: e2fsck's exit code (a bit mask: 1 fixed, 2 fixed and reboot, 4 left uncorrected, 8+ failed). */
export function fsckVerdict(exitCode: number): 'clean' | 'fixed' | 'failed' {
  if (exitCode === 0) return 'clean';
  return (exitCode & ~3) === 0 ? 'fixed' : 'failed';
}

export interface FsSize {
  blockSize: number;
  blocks: number;
  freeBlocks: number;
}

/** Pure: the block counts from `dumpe2fs -h` output. */
export function parseDumpe2fsHeader(text: string): FsSize {
  const field = (name: string) => {
    const m = new RegExp(`^${name}:\\s*(\\d+)\\s*$`, 'm').exec(text);
    if (!m) throw new Error(`dumpe2fs -h printed no "${name}"`);
    return Number(m[1]);
  };
  return { blockSize: field('Block size'), blocks: field('Block count'), freeBlocks: field('Free blocks') };
}

function describeLayout(partitions: ImagePartition[]): string {
  return [...partitions]
    .sort((a, b) => a.start - b.start)
    .map((p) => `p${p.number} ${p.fstype} ${formatBytes(p.size)} at ${formatBytes(p.start)}`)
    .join(', ');
}

// ---- the operation ----

export interface GrowOptions {
  image: string;
  /** "+512M", "2G", ... or a parsed spec. */
  size: string | SizeSpec;
}

export interface GrowResult {
  image: string;
  table: TableType;
  partition: number;
  fstype: FsType;
  start: number;
  file: { before: number; after: number };
  partitionSize: { before: number; after: number };
  filesystem: { blockSize: number; before: { blocks: number; freeBlocks: number }; after: { blocks: number; freeBlocks: number } };
  /** e2fsck fixed something on its first pass (before anything grew). */
  fsckFixed: boolean;
}

export async function growImage(ctx: Context, o: GrowOptions): Promise<GrowResult> {
  const { emit, run } = ctx;
  const spec = typeof o.size === 'string' ? parseSize(o.size) : o.size;
  const abs = path.resolve(o.image);
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

/**
 * Take the image's flock, the one sessions take (lib/lock.ts). No namespace: a private mount
 * namespace would pin every host mount (a kept `imgbuild mount` of another image) while it lives.
 */
async function lockImage(ctx: Context, image: string): Promise<() => Promise<void>> {
  const lock = await holdLock(ctx, image, image, () => inUseError(image, ctx.stateDir));
  return () => lock.release();
}

/** In use: a loop over the image (an `imgbuild mount`, another tool), or a kept mount's journal. */
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

/** A read-write loop over one partition, journaled; detached before returning (on error the caller's unwinding does it). */
async function withLoop<T>(tx: Transaction, image: ImageFile, offset: number, sizelimit: number, fn: (dev: string) => Promise<T>): Promise<T> {
  const { device } = await attachLoop(tx, { image: image.id, imagePath: image.path, offset, sizelimit, readOnly: false });
  const value = await fn(device);
  const failed = await tx.stack.unwindTop(1);
  if (failed.length > 0) throw new CleanupError(failed);
  return value;
}

/** e2fsck -f with -p (only safe fixes) or -y; true if it fixed something, a StepError if errors remain. */
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

function repairCommand(plan: GrowPlan): string {
  return `dev=$(losetup --find --show --offset ${plan.start} --sizelimit ${plan.partitionSize} ${shellQuote(plan.image)}); e2fsck -f $dev; losetup -d $dev`;
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

/** Human-readable result, for the CLI. */
export function formatGrowResult(r: GrowResult): string {
  const fs = r.filesystem;
  const change = (a: number, b: number) => `${formatBytes(a)} -> ${formatBytes(b)} (+${formatBytes(b - a)})`;
  return [
    `grew ${r.image}: ${change(r.file.before, r.file.after)}; the new space is sparse: it takes host disk only as the filesystem fills`,
    `  partition ${r.partition} (${r.fstype}, ${r.table.toUpperCase()}): ${change(r.partitionSize.before, r.partitionSize.after)}, start unchanged at byte ${r.start}`,
    `  filesystem: ${change(fs.before.blocks * fs.blockSize, fs.after.blocks * fs.blockSize)}, now ${fs.after.blocks} blocks of ${fs.blockSize} bytes; free ${change(fs.before.freeBlocks * fs.blockSize, fs.after.freeBlocks * fs.blockSize)}`,
    ...(r.fsckFixed ? ['  note: e2fsck fixed errors in the filesystem before it grew'] : []),
  ].join('\n');
}
