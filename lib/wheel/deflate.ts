// The one ZIP writer imgbuild needs: a wheel the chroot wrote stored (uncompressed) is deflated
// here, natively, keeping every record of the archive as it was.
import fs from 'node:fs';
import { promisify } from 'node:util';
import zlib from 'node:zlib';
import { LOCAL, readDirectory, readEntry, readLocalExtra, readRaw, ZipError } from '../parse/zip.js';

/** What deflateStored did to an archive. */
export interface DeflateResult {
  /** Entries it deflated (stored before, non-empty). */
  deflated: number;
  bytesBefore: number;
  bytesAfter: number;
}

const deflateRaw = promisify(zlib.deflateRaw);
const FLAG_DATA_DESCRIPTOR = 0x8;

/**
 * Write `file` with its stored entries deflated to `dest` (a new file), here and natively: the
 * build in the chroot writes wheels uncompressed, because deflate under qemu costs seconds per
 * megabyte. Names, order, times, attributes, extra fields, comments and contents stay as they
 * were; every entry it deflates is CRC-checked first, the others are copied byte for byte. On any
 * error `dest` is removed. An archive with nothing stored gets no `dest` (deflated: 0). Deflate
 * runs on libuv's threads: the caller may go on.
 */
export function deflateStored(file: string, dest: string, level = zlib.constants.Z_DEFAULT_COMPRESSION): Promise<DeflateResult> {
  return rewriteWheel(file, dest, { deflate: true, level });
}

/** Pure: an epoch (seconds, UTC) as a ZIP entry's MS-DOS time and date, clamped to 1980-2107. */
export function dosTime(epoch: number): { time: number; date: number } {
  const d = new Date(Math.min(Math.max(epoch, 315532800), 4354819199) * 1000);
  return {
    time: (d.getUTCHours() << 11) | (d.getUTCMinutes() << 5) | Math.floor(d.getUTCSeconds() / 2),
    date: ((d.getUTCFullYear() - 1980) << 9) | ((d.getUTCMonth() + 1) << 5) | d.getUTCDate(),
  };
}

/** Pure: a Unix mode as a reproducible wheel keeps it: 0755 directories and executables, else 0644, no setuid, setgid or sticky bit. */
export function normalMode(mode: number): number {
  const type = mode & 0o170000;
  if (type === 0o040000) return 0o040755;
  if (type === 0o100000 || type === 0) return 0o100000 | (mode & 0o111 ? 0o755 : 0o644);
  return mode;
}

/**
 * Rewrite a wheel into `dest` (a new file): with `deflate`, its stored entries deflated (as
 * deflateStored); with `epoch`, every entry's time set to it (UTC) and every Unix mode normalised
 * (normalMode), so two builds of the same source give the same bytes. Without `epoch` and with
 * nothing stored, no `dest` is written (deflated: 0).
 */
export async function rewriteWheel(file: string, dest: string, o: { deflate: boolean; level?: number; epoch?: number }): Promise<DeflateResult> {
  const { entries, central, eocd } = readDirectory(file);
  const bytesBefore = fs.statSync(file).size;
  if (o.epoch === undefined && (!o.deflate || !entries.some((e) => e.method === 0 && e.size > 0))) return { deflated: 0, bytesBefore, bytesAfter: bytesBefore };
  const when = o.epoch === undefined ? undefined : dosTime(o.epoch);
  const out = fs.openSync(dest, 'wx', 0o644);
  let offset = 0;
  let deflated = 0;
  const write = (b: Buffer) => {
    let done = 0;
    while (done < b.length) done += fs.writeSync(out, b, done, b.length - done, offset + done);
    offset += b.length;
  };
  try {
    const records: Buffer[] = [];
    let p = 0;
    for (const e of entries) {
      const record = Buffer.from(central.subarray(p, p + 46 + central.readUInt16LE(p + 28) + central.readUInt16LE(p + 30) + central.readUInt16LE(p + 32)));
      p += record.length;
      const localExtra = readLocalExtra(file, e);
      let method = e.method;
      let data: Buffer;
      if (o.deflate && e.method === 0 && e.size > 0) {
        data = await deflateRaw(readEntry(file, e), { level: o.level ?? zlib.constants.Z_DEFAULT_COMPRESSION });
        method = 8;
        deflated++;
      } else {
        data = readRaw(file, e, e.compressedSize); // copied as it is
      }
      if (data.length >= 0xffffffff || offset >= 0xffffffff) throw new ZipError(file, 'the deflated archive would need ZIP64');
      const flags = e.flags & ~FLAG_DATA_DESCRIPTOR;
      const version = method === 8 ? Math.max(20, record.readUInt16LE(6)) : record.readUInt16LE(6);
      const name = record.subarray(46, 46 + record.readUInt16LE(28));
      if (when) {
        record.writeUInt16LE(when.time, 12);
        record.writeUInt16LE(when.date, 14);
        // Unix modes live in the high half of the external attributes when made on Unix (3).
        if (record[5] === 3) record.writeUInt32LE(((normalMode(record.readUInt32LE(38) >>> 16) << 16) | (record.readUInt32LE(38) & 0xffff)) >>> 0, 38);
      }
      const local = Buffer.alloc(30);
      local.writeUInt32LE(LOCAL, 0);
      local.writeUInt16LE(version, 4);
      local.writeUInt16LE(flags, 6);
      local.writeUInt16LE(method, 8);
      record.copy(local, 10, 12, 16); // modification time and date
      local.writeUInt32LE(e.crc32, 14);
      local.writeUInt32LE(data.length, 18);
      local.writeUInt32LE(e.size, 22);
      local.writeUInt16LE(name.length, 26);
      local.writeUInt16LE(localExtra.length, 28);
      record.writeUInt16LE(version, 6);
      record.writeUInt16LE(flags, 8);
      record.writeUInt16LE(method, 10);
      record.writeUInt32LE(data.length, 20);
      record.writeUInt32LE(offset, 42);
      records.push(record);
      write(local);
      write(name);
      write(localExtra);
      write(data);
    }
    const cdOffset = offset;
    for (const r of records) write(r);
    if (offset >= 0xffffffff) throw new ZipError(file, 'the deflated archive would need ZIP64');
    eocd.writeUInt32LE(offset - cdOffset, 12);
    eocd.writeUInt32LE(cdOffset, 16);
    write(eocd);
    fs.closeSync(out);
  } catch (error) {
    try {
      fs.closeSync(out);
    } catch {
      // closed already
    }
    fs.rmSync(dest, { force: true });
    throw error;
  }
  return { deflated, bytesBefore, bytesAfter: offset };
}
