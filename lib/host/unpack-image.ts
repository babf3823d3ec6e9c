// Images as they ship: Raspberry Pi OS as .img.xz, PYNQ as .zip, others as .img.gz, .img.zst or
// .img.bz2. Each is decompressed once into the cache, sparse, under the sha256 of the archive (the
// hash is remembered under the archive's stamp, so an unchanged archive is not read again), and
// then used like any image: read-only unless --rw or --persist says otherwise, in which case the
// decompressed copy is what changes, and imgbuild says which.
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { stage } from '../core/events.js';
import { hashFile } from '../core/hash.js';
import { formatBytes } from '../core/units.js';

type Format = 'xz' | 'gzip' | 'zstd' | 'bzip2' | 'zip';

const magics: [Format, number[]][] = [
  ['xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]],
  ['gzip', [0x1f, 0x8b]],
  ['zip', [0x50, 0x4b, 0x03, 0x04]],
  ['zstd', [0x28, 0xb5, 0x2f, 0xfd]],
  ['bzip2', [0x42, 0x5a, 0x68]],
];

// The decompressor reading the archive on stdin (zip: unzip -p reads the file itself).
const tools: Record<Exclude<Format, 'zip'>, { cmd: string; pkg: string }> = {
  xz: { cmd: 'xz', pkg: 'xz-utils' },
  gzip: { cmd: 'gzip', pkg: 'gzip' },
  zstd: { cmd: 'zstd', pkg: 'zstd' },
  bzip2: { cmd: 'bzip2', pkg: 'bzip2' },
};

/** An image ready to open: the file itself, or the decompressed copy of the archive given. */
export interface RawImage {
  path: string;
  /** The archive it was decompressed from, and its format. */
  archive?: { path: string; format: Format; sha256: string };
}

/** The compression an image file's first bytes show, if any. */
export function archiveFormat(file: string): Format | undefined {
  const head = Buffer.alloc(8);
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return undefined;
  }
  try {
    fs.readSync(fd, head, 0, 8, 0);
  } finally {
    fs.closeSync(fd);
  }
  return magics.find(([, m]) => m.every((b, i) => head[i] === b))?.[0];
}

/** Pure: the one .img an archive listing (unzip -Z1) holds, or why there is not exactly one. */
export function oneImage(listing: string, archive: string): string {
  const files = listing.split('\n').map((l) => l.trim()).filter((l) => l && !l.endsWith('/'));
  const images = files.filter((f) => /\.img$/i.test(f));
  if (images.length === 1) return images[0]!;
  if (images.length === 0) throw new PreconditionError(`${archive} holds no .img file (it has ${files.slice(0, 5).join(', ') || 'nothing'}${files.length > 5 ? ', ...' : ''})`, 'give the image itself, or an archive with one .img inside');
  throw new PreconditionError(`${archive} holds ${images.length} .img files (${images.join(', ')})`, 'unpack the one you mean and give its path');
}

/** Pure: the name of the decompressed copy: the archive's name without its archive suffixes, under its hash. */
export function rawName(archive: string, sha256: string): string {
  const stem = path.basename(archive).replace(/\.(xz|gz|zst|bz2|zip)$/i, '').replace(/\.img$/i, '');
  return `${sha256.slice(0, 16)}-${stem.replace(/[^A-Za-z0-9._-]/g, '_')}.img`;
}

/**
 * The image to open for `imagePath`: itself when it is not compressed, else its decompressed copy
 * in CACHE/images (made now if missing). `writable` (--rw, --persist) says which copy will change.
 */
export async function rawImage(ctx: Context, imagePath: string, o: { writable?: boolean } = {}): Promise<RawImage> {
  const abs = path.resolve(imagePath);
  const st = fs.statSync(abs, { throwIfNoEntry: false });
  const format = st?.isFile() ? archiveFormat(abs) : undefined;
  if (!format) return { path: abs };
  const dir = path.join(ctx.cacheDir, 'images');
  fs.mkdirSync(dir, { recursive: true });
  const memo = readMemo(dir, abs);
  let sha256 = memo;
  let out = sha256 ? path.join(dir, rawName(abs, sha256)) : undefined;
  if (!out || !fs.existsSync(out)) {
    sha256 = await stage(ctx.emit, `decompress ${path.basename(abs)} (${format}) into the cache`, () => decompress(ctx, abs, format, dir));
    out = path.join(dir, rawName(abs, sha256));
    writeMemo(dir, abs, sha256);
  } else {
    ctx.emit({ kind: 'info', message: `${abs} is ${format}-compressed: using its decompressed copy ${out}` });
  }
  if (o.writable) ctx.emit({ kind: 'notice', message: `${path.basename(abs)} is ${format}-compressed: changes go into its decompressed copy ${out}, not into the archive` });
  return { path: out, archive: { path: abs, format, sha256: sha256! } };
}

// Decompresses into a temporary file beside the cache entry, hashing the archive on the way; renames it into place.
async function decompress(ctx: Context, archive: string, format: Format, dir: string): Promise<string> {
  const tmp = path.join(dir, `.tmp-${process.pid}-${Date.now()}.img`);
  try {
    let sha256: string;
    if (format === 'zip') {
      sha256 = await hashFile(archive);
      const listing = await ctx.run('unzip', ['-Z1', archive], { allowFailure: true, quiet: true });
      if (listing.exitCode !== 0) throw new PreconditionError(`${archive} is not a readable zip archive: ${listing.all.trim().split('\n').pop()}`, 'fetch it again');
      const member = oneImage(listing.stdout, archive);
      await pipeSparse(ctx, 'unzip', ['-p', archive, member], undefined, tmp, { archive, format });
    } else {
      const hash = crypto.createHash('sha256');
      await pipeSparse(ctx, tools[format].cmd, ['-dc'], { file: archive, hash }, tmp, { archive, format });
      sha256 = hash.digest('hex');
    }
    fs.renameSync(tmp, path.join(dir, rawName(archive, sha256)));
    return sha256;
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

// Runs a decompressor and writes what it prints into `out`, skipping all-zero blocks (holes).
async function pipeSparse(ctx: Context, cmd: string, args: string[], input: { file: string; hash: crypto.Hash } | undefined, out: string, what: { archive: string; format: Format }): Promise<void> {
  const child = spawn(cmd, args, { stdio: [input ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
  const spawnError = new Promise<never>((_, reject) => child.on('error', (e) => reject(new PreconditionError(`cannot run ${cmd} to decompress ${what.archive}: ${e.message}`, `install it: apt-get install ${what.format === 'zip' ? 'unzip' : tools[what.format].pkg}`))));
  spawnError.catch(() => undefined);
  let stderr = '';
  child.stderr!.on('data', (c: Buffer) => (stderr = (stderr + c.toString()).slice(-4000)));
  if (input) {
    const reader = fs.createReadStream(input.file);
    reader.on('data', (c) => input.hash.update(c));
    reader.pipe(child.stdin!);
    child.stdin!.on('error', () => undefined); // the decompressor stopped reading: its exit code says why
  }
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
  const fd = fs.openSync(out, 'w', 0o644);
  const zeros = Buffer.alloc(1 << 16);
  let pos = 0;
  const t0 = performance.now();
  let shown = 0;
  try {
    for await (const chunk of child.stdout! as AsyncIterable<Buffer>) {
      for (let i = 0; i < chunk.length; i += zeros.length) {
        const block = chunk.subarray(i, Math.min(i + zeros.length, chunk.length));
        if (!block.equals(zeros.subarray(0, block.length))) fs.writeSync(fd, block, 0, block.length, pos);
        pos += block.length;
      }
      if (performance.now() - shown > 1000) {
        shown = performance.now();
        ctx.emit({ kind: 'output', line: `${formatBytes(pos)} written, ${formatBytes(pos / ((shown - t0) / 1000))}/s` });
      }
    }
    fs.ftruncateSync(fd, pos);
  } finally {
    fs.closeSync(fd);
  }
  const code = await Promise.race([exited, spawnError]);
  if (code !== 0) throw new PreconditionError(`${what.archive} could not be decompressed (${what.format}, ${cmd} exit ${code}): ${stderr.trim().split('\n').pop() ?? ''}`, 'the archive is damaged or incomplete: fetch it again (and check its sha256)');
  if (pos === 0) throw new PreconditionError(`${what.archive} decompresses to nothing`, 'fetch it again');
}

// The archive's sha256, remembered under its stamp (device, inode, size, mtime, ctime).
function memoFile(dir: string, archive: string): { file: string; stamp: string } {
  const st = fs.statSync(archive, { bigint: true });
  return { file: path.join(dir, '.memo', `${st.dev}-${st.ino}.json`), stamp: `${st.size}:${st.mtimeNs}:${st.ctimeNs}` };
}

function readMemo(dir: string, archive: string): string | undefined {
  const { file, stamp } = memoFile(dir, archive);
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as { stamp: string; sha256: string };
    return m.stamp === stamp && /^[0-9a-f]{64}$/.test(m.sha256) ? m.sha256 : undefined;
  } catch {
    return undefined;
  }
}

function writeMemo(dir: string, archive: string, sha256: string): void {
  const { file, stamp } = memoFile(dir, archive);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify({ stamp, sha256 }));
}
