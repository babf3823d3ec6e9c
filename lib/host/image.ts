// Opening an image file for reading its layout: every check here is read-only, and every bad
// input stops with a message that names the file and says what to do.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';
import type { FileId } from '../core/identity.js';
import { type FsInfo, type Partition, type PartitionTable, linuxFilesystems, parseSfdiskJson, readFilesystem } from '../parse/partitions.js';
import type { Run } from '../core/runner.js';
import { archiveFormat } from './unpack-image.js';

export interface ImagePartition extends Partition, FsInfo {}

export interface ImageFile {
  /** Absolute path; always passed to tools as one argv element, never parsed. */
  path: string;
  id: FileId;
  size: number;
  blockDevice: boolean;
  table: PartitionTable;
  partitions: ImagePartition[];
}


export async function openImage(run: Run, imagePath: string, options: { allowBlockDevice?: boolean } = {}): Promise<ImageFile> {
  const abs = path.resolve(imagePath);
  let st: fs.Stats;
  try {
    st = fs.statSync(abs);
  } catch {
    throw new PreconditionError(`image not found: ${abs}`, 'check the path to the .img file');
  }
  if (st.isDirectory()) throw new PreconditionError(`${abs} is a directory, not an image file`, 'give the path of the .img file itself');
  const blockDevice = st.isBlockDevice();
  if (blockDevice && !options.allowBlockDevice) {
    throw new PreconditionError(
      `${abs} is a block device, not an image file`,
      'imgbuild works on image files; to use a card or disk directly pass --allow-block-device (and be sure it is the right one)',
    );
  }
  if (!blockDevice && !st.isFile()) throw new PreconditionError(`${abs} is not a regular file`, 'give the path of a raw .img file');
  const size = blockDevice ? await blockDeviceSize(run, abs) : st.size;
  if (size === 0) throw new PreconditionError(`${abs} is empty`, 'the download or copy failed; fetch the image again');
  // imgbuild's verbs decompress an archive first (rawImage); a library caller may not have.
  const name = archiveFormat(abs);
  if (name) throw new PreconditionError(`${abs} is ${name}-compressed`, `open it through rawImage() (imgbuild's verbs do), or decompress it first (${name === 'zip' ? 'unzip' : name === 'xz' ? 'xz -dk' : `${name} -dk`} ...)`);
  const table = await readPartitionTable(run, abs, size);
  const partitions = table.partitions.map((p) => ({ ...p, ...readFilesystem(abs, p) }));
  return { path: abs, id: { dev: st.dev, ino: st.ino }, size, blockDevice, table, partitions };
}

async function blockDeviceSize(run: Run, dev: string): Promise<number> {
  const r = await run('blockdev', ['--getsize64', dev], { quiet: true });
  return Number(r.stdout.trim());
}

/** Partitions that may hold a Linux root, most likely first (by label, then size). */
export function rootCandidates(image: ImageFile): ImagePartition[] {
  const score = (p: ImagePartition) => (/^(root|rootfs|writable|pynq)/i.test(p.label ?? '') ? 1e15 : 0) + p.size;
  return image.partitions.filter((p) => linuxFilesystems.includes(p.fstype)).sort((a, b) => score(b) - score(a));
}

export function bootCandidates(image: ImageFile): ImagePartition[] {
  return image.partitions.filter((p) => p.fstype === 'vfat');
}

/**
 * A GPT that sfdisk could not read leaves only its protective MBR (one partition of type ee):
 * the image was cut short (the backup header and the end of the disk are gone), or both GPT
 * headers are damaged. Say which, instead of "no Linux root filesystem".
 */
function checkReadableGpt(image: string, table: PartitionTable, stderr: string, imageSize: number): void {
  if (table.type !== 'mbr' || table.partitions.length !== 1 || table.partitions[0]!.type.toLowerCase() !== 'ee') return;
  const m = /GPT PMBR size mismatch \((\d+) != (\d+)\)/.exec(stderr);
  if (m && Number(m[1]) > Number(m[2])) {
    const bytes = (Number(m[1]) + 1) * table.sectorSize;
    throw new PreconditionError(`${image} is truncated: its GPT disk is ${bytes} bytes but the file has ${imageSize}, and its partition table cannot be read`, 'the download or copy was cut short; fetch the image again');
  }
  throw new PreconditionError(`the GPT partition table of ${image} cannot be read (only its protective MBR can)`, 'both GPT headers are damaged: fetch the image again, or repair it with gdisk if you know what it held');
}

/** The image's partition table (sfdisk --json), each partition checked to lie inside the file. */
export async function readPartitionTable(run: Run, image: string, imageSize: number): Promise<PartitionTable> {
  const r = await run('sfdisk', ['--json', image], { allowFailure: true, quiet: true });
  if (r.exitCode !== 0 || !r.stdout.trim()) {
    throw new PreconditionError(
      `no partition table in ${image}`,
      'imgbuild takes a raw SD-card image (.img) with an MBR or GPT partition table; decompress .xz/.zip images first',
    );
  }
  const table = parseSfdiskJson(r.stdout);
  if (table.partitions.length === 0) throw new PreconditionError(`the partition table of ${image} has no partitions`, 'is this a whole-disk image?');
  checkReadableGpt(image, table, r.stderr, imageSize);
  for (const p of table.partitions) {
    if (p.start + p.size > imageSize) {
      throw new PreconditionError(
        `${image} is truncated: partition ${p.number} ends at byte ${p.start + p.size} but the file has ${imageSize} bytes`,
        'the download or copy was cut short; fetch the image again',
      );
    }
  }
  return table;
}

/**
 * Writes must reach the image: on a read-only filesystem (or a read-only bind) losetup would
 * quietly attach it read-only and the session fail later with EROFS. Exit 3 naming it.
 */
export function checkImageWritable(file: string, verb: string): void {
  try {
    fs.accessSync(file, fs.constants.W_OK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new PreconditionError(
      `${file} cannot be written (${code === 'EROFS' ? 'it is on a read-only filesystem' : code ?? 'not writable'}): imgbuild ${verb} here writes into the image`,
      'copy the image to a writable place first, or leave out --rw / --persist (a throwaway layer over the image needs no write access)',
    );
  }
}
