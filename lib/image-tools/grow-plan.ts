// The pure half of `imgbuild grow`: the size argument, what to grow or why not, the sfdisk and
// e2fsck conventions, dumpe2fs output, and the result as the CLI prints it.
import { PreconditionError, UsageError } from '../core/errors.js';
import type { ImageFile, ImagePartition } from '../host/image.js';
import type { FsType, TableType } from '../parse/partitions.js';
import { shellQuote } from '../core/quote.js';
import { formatBytes } from '../core/units.js';

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

/** The commands that check the partition by hand, for the hint of a failed e2fsck. */
export function repairCommand(plan: GrowPlan): string {
  return `dev=$(losetup --find --show --offset ${plan.start} --sizelimit ${plan.partitionSize} ${shellQuote(plan.image)}); e2fsck -f $dev; losetup -d $dev`;
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
