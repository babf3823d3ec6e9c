// The image's identity for the wheel cache key: its sha256, remembered under the file's stamp
// (device, inode, size, mtime, ctime) so an unchanged image is not hashed again.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashFile } from '../core/hash.js';
import { wheelsDir } from './cache.js';

interface Stamp {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

interface ImageMemo extends Stamp {
  sha256: string;
}

// A file changed within this long before its hash began may change again without a new ctime (coarse clock ticks).
const racyNs = 1_000_000_000n;

function stampOf(st: fs.BigIntStats): Stamp {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * The sha256 of an image, hashed again only when the file may have changed: the result is kept
 * in the cache under the file's device, inode, size, mtime and ctime. Every write, truncate,
 * chmod or utime changes the ctime, which no one can set back. A block device (size 0, no ctime
 * on write) is hashed every time.
 */
export async function imageIdentity(imagePath: string, cacheDir: string): Promise<string> {
  const before = fs.statSync(imagePath, { bigint: true });
  if (!before.isFile()) return hashFile(imagePath);
  const stamp = stampOf(before);
  const memoFile = path.join(wheelsDir(cacheDir), 'images', `${stamp.dev}-${stamp.ino}.json`);
  const memo = readMemo(memoFile);
  if (memo && sameStamp(memo, stamp)) return memo.sha256;

  const started = BigInt(Date.now()) * 1_000_000n;
  const sha256 = await hashFile(imagePath);
  const after = stampOf(fs.statSync(imagePath, { bigint: true }));
  // Like git's "racy" index entries: a write in the same clock tick as the last one keeps the ctime.
  if (sameStamp(after, stamp) && BigInt(stamp.ctimeNs) < started - racyNs) {
    try {
      writeAtomic(memoFile, `${JSON.stringify({ ...stamp, sha256 } satisfies ImageMemo)}\n`);
    } catch {
      // the memo only saves time; an unwritable cache hashes again next time
    }
  }
  return sha256;
}

function readMemo(file: string): ImageMemo | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ImageMemo>;
    const fields = [m.dev, m.ino, m.size, m.mtimeNs, m.ctimeNs];
    if (fields.every((f) => typeof f === 'string') && typeof m.sha256 === 'string' && /^[0-9a-f]{64}$/.test(m.sha256)) return m as ImageMemo;
  } catch {
    // missing or corrupt: hash again
  }
  return undefined;
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
