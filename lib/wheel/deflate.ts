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
export async function deflateStored(file: string, dest: string, level = zlib.constants.Z_DEFAULT_COMPRESSION): Promise<DeflateResult> {
  const { entries, central, eocd } = readDirectory(file);
  const bytesBefore = fs.statSync(file).size;
  if (!entries.some((e) => e.method === 0 && e.size > 0)) return { deflated: 0, bytesBefore, bytesAfter: bytesBefore };
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
      if (e.method === 0 && e.size > 0) {
        data = await deflateRaw(readEntry(file, e), { level });
        method = 8;
        deflated++;
      } else {
        data = readRaw(file, e, e.compressedSize); // copied as it is
      }
      if (data.length >= 0xffffffff || offset >= 0xffffffff) throw new ZipError(file, 'the deflated archive would need ZIP64');
      const flags = e.flags & ~FLAG_DATA_DESCRIPTOR;
      const version = method === 8 ? Math.max(20, record.readUInt16LE(6)) : record.readUInt16LE(6);
      const name = record.subarray(46, 46 + record.readUInt16LE(28));
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
