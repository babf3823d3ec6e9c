// A small ZIP reader for wheels: the central directory, then one entry at a time, and the raw
// records a writer keeps (wheel/deflate.ts). Stored and deflated entries only; ZIP64, split and
// encrypted archives are refused. Every offset and size comes from the file, so each is checked
// against the file before it is used.
import fs from 'node:fs';
import zlib from 'node:zlib';
import { PreconditionError } from '../core/errors.js';

export interface ZipEntry {
  /** The name as stored: '/'-separated, a trailing '/' for a directory. */
  name: string;
  /** 0 stored, 8 deflate. */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  /** Offset of the entry's local header in the file. */
  headerOffset: number;
}

/** The file is not a ZIP archive this reader accepts. */
export class ZipError extends PreconditionError {
  constructor(file: string, problem: string) {
    super(`${file}: ${problem}`, 'wheels are plain ZIP archives; rebuild the wheel');
  }
}

const EOCD = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const CENTRAL = 0x02014b50;
/** The signature of a local file header. */
export const LOCAL = 0x04034b50;
const FLAG_ENCRYPTED = 0x1;

export function readZip(file: string): ZipEntry[] {
  return readDirectory(file).entries;
}

/** The central directory: its entries, its raw bytes (one record per entry, in order) and the end record. */
/** The entries with the raw central directory and end record they were read from (for a writer that keeps them). */
export function readDirectory(file: string): { entries: ZipEntry[]; central: Buffer; eocd: Buffer } {
  return withFd(file, (fd, fileSize) => {
    const tailSize = Math.min(fileSize, 22 + 0xffff);
    const tail = readAt(file, fd, fileSize - tailSize, tailSize);
    const at = findEocd(tail);
    if (at < 0) throw new ZipError(file, 'not a ZIP archive (no end-of-central-directory record)');
    const eocdOffset = fileSize - tailSize + at;
    const disk = tail.readUInt16LE(at + 4);
    const cdDisk = tail.readUInt16LE(at + 6);
    const count = tail.readUInt16LE(at + 10);
    const cdSize = tail.readUInt32LE(at + 12);
    const cdOffset = tail.readUInt32LE(at + 16);
    if ((at >= 20 && tail.readUInt32LE(at - 20) === ZIP64_LOCATOR) || count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
      throw new ZipError(file, 'ZIP64 archives are not supported');
    }
    if (disk !== 0 || cdDisk !== 0 || count !== tail.readUInt16LE(at + 8)) throw new ZipError(file, 'split (multi-disk) archives are not supported');
    if (cdOffset + cdSize > eocdOffset) throw new ZipError(file, 'central directory lies outside the file');

    const cd = readAt(file, fd, cdOffset, cdSize);
    const entries: ZipEntry[] = [];
    let p = 0;
    for (let i = 0; i < count; i++) {
      if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL) throw new ZipError(file, `central directory entry ${i} is damaged`);
      const flags = cd.readUInt16LE(p + 8);
      const nameLength = cd.readUInt16LE(p + 28);
      const next = p + 46 + nameLength + cd.readUInt16LE(p + 30) + cd.readUInt16LE(p + 32);
      if (next > cd.length) throw new ZipError(file, `central directory entry ${i} is damaged`);
      // UTF-8 even without flag bit 11 (which would mean CP437): wheel names are ASCII in practice.
      const name = cd.toString('utf8', p + 46, p + 46 + nameLength);
      const entry: ZipEntry = {
        name,
        method: cd.readUInt16LE(p + 10),
        flags,
        crc32: cd.readUInt32LE(p + 16),
        compressedSize: cd.readUInt32LE(p + 20),
        size: cd.readUInt32LE(p + 24),
        headerOffset: cd.readUInt32LE(p + 42),
      };
      if (entry.compressedSize === 0xffffffff || entry.size === 0xffffffff || entry.headerOffset === 0xffffffff) {
        throw new ZipError(file, `${name} is a ZIP64 entry, which is not supported`);
      }
      if (flags & FLAG_ENCRYPTED) throw new ZipError(file, `${name} is encrypted`);
      if (entry.headerOffset + 30 + entry.compressedSize > cdOffset) throw new ZipError(file, `${name} lies outside the file`);
      entries.push(entry);
      p = next;
    }
    return { entries, central: cd, eocd: Buffer.from(tail.subarray(at, at + 22 + tail.readUInt16LE(at + 20))) };
  });
}

/** True if extracting `name` stays below the target directory (no absolute path, no `..`). */
export function isSafeEntryName(name: string): boolean {
  if (name === '' || name.includes('\0') || /^([/\\]|[A-Za-z]:)/.test(name)) return false;
  return !name.split(/[/\\]/).includes('..');
}

/** The entry's whole contents, checked against its size and CRC. */
export function readEntry(file: string, e: ZipEntry): Buffer {
  if (!isSafeEntryName(e.name)) throw new ZipError(file, `refusing to extract ${JSON.stringify(e.name)}: absolute or '..' path`);
  const data = readRaw(file, e, e.compressedSize);
  let out: Buffer;
  if (e.method === 0) {
    out = data;
  } else if (e.method === 8) {
    try {
      // The declared size bounds the output, so a hostile entry cannot inflate without limit.
      out = zlib.inflateRawSync(data, { maxOutputLength: Math.max(e.size, 1) });
    } catch (error) {
      throw new ZipError(file, `${e.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  } else {
    throw new ZipError(file, `${e.name} uses compression method ${e.method}; only stored (0) and deflate (8) are supported`);
  }
  if (out.length !== e.size) throw new ZipError(file, `${e.name} is ${out.length} bytes, the directory says ${e.size}`);
  if (zlib.crc32(out) !== e.crc32) throw new ZipError(file, `${e.name} fails its CRC check`);
  return out;
}

/**
 * The first `n` bytes of an entry (fewer if it is shorter), without reading or inflating the rest
 * when that can be avoided. Not CRC-checked: use readEntry for the contents.
 */
export function readEntryHead(file: string, e: ZipEntry, n: number): Buffer {
  const want = Math.min(n, e.size);
  if (e.method === 0) return readRaw(file, e, Math.min(want, e.compressedSize));
  if (e.method === 8) {
    // Deflate spends at most ~2 bytes per literal after a block header of a few hundred bytes.
    const raw = readRaw(file, e, Math.min(e.compressedSize, 2 * want + 1024));
    try {
      const head = zlib.inflateRawSync(raw, { finishFlush: zlib.constants.Z_SYNC_FLUSH, maxOutputLength: Math.max(e.size, 1) });
      if (head.length >= want) return head.subarray(0, want);
    } catch {
      // A prefix that does not inflate cleanly: let the full read report what is wrong.
    }
  }
  return readEntry(file, e).subarray(0, want);
}

/** The first `length` bytes of an entry's data as stored in the archive (compressed or not). */
export function readRaw(file: string, e: ZipEntry, length: number): Buffer {
  return withFd(file, (fd, fileSize) => {
    if (e.headerOffset + 30 > fileSize) throw new ZipError(file, `${e.name}: local header lies outside the file`);
    const header = readAt(file, fd, e.headerOffset, 30);
    if (header.readUInt32LE(0) !== LOCAL) throw new ZipError(file, `${e.name}: damaged local header`);
    const dataOffset = e.headerOffset + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    if (dataOffset + e.compressedSize > fileSize) throw new ZipError(file, `${e.name}: data lies outside the file`);
    return readAt(file, fd, dataOffset, length);
  });
}

function findEocd(tail: Buffer): number {
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD && i + 22 + tail.readUInt16LE(i + 20) <= tail.length) return i;
  }
  return -1;
}

function withFd<T>(file: string, fn: (fd: number, size: number) => T): T {
  const fd = fs.openSync(file, 'r');
  try {
    return fn(fd, fs.fstatSync(fd).size);
  } finally {
    fs.closeSync(fd);
  }
}

function readAt(file: string, fd: number, position: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, b, done, length - done, position + done);
    if (n === 0) throw new ZipError(file, 'unexpected end of file');
    done += n;
  }
  return b;
}

/** The extra field of an entry's local header (it may differ from the central directory's). */
export function readLocalExtra(file: string, e: ZipEntry): Buffer {
  return withFd(file, (fd) => {
    const head = readAt(file, fd, e.headerOffset, 30);
    return readAt(file, fd, e.headerOffset + 30 + head.readUInt16LE(26), head.readUInt16LE(28));
  });
}
