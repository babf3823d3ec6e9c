// The partition table (from sfdisk --json output) and what each partition holds (read from its
// superblock bytes): all without attaching or mounting anything.
import fs from 'node:fs';

export type TableType = 'mbr' | 'gpt';

export interface Partition {
  number: number;
  /** In bytes from the start of the image. */
  start: number;
  size: number;
  /** MBR type code (e.g. "c", "83") or GPT type GUID. */
  type: string;
  bootable: boolean;
  name?: string;
  partuuid?: string;
}

export interface PartitionTable {
  type: TableType;
  id: string;
  sectorSize: number;
  partitions: Partition[];
}

/** Pure: `sfdisk --json IMAGE` output. */
export function parseSfdiskJson(text: string): PartitionTable {
  const data = JSON.parse(text) as {
    partitiontable: {
      label: string;
      id?: string;
      sectorsize?: number;
      partitions?: { node: string; start: number; size: number; type: string; bootable?: boolean; name?: string; uuid?: string }[];
    };
  };
  const t = data.partitiontable;
  const sectorSize = t.sectorsize ?? 512;
  const type: TableType = t.label === 'gpt' ? 'gpt' : 'mbr';
  const partitions = (t.partitions ?? [])
    .map((p) => {
      const m = /(\d+)$/.exec(p.node);
      const part: Partition = {
        number: m ? Number(m[1]) : 0,
        start: p.start * sectorSize,
        size: p.size * sectorSize,
        type: p.type.toLowerCase(),
        bootable: !!p.bootable,
      };
      if (p.name) part.name = p.name;
      if (p.uuid) part.partuuid = p.uuid.toLowerCase();
      return part;
    })
    // Extended-partition containers hold no filesystem.
    .filter((p) => !(type === 'mbr' && ['5', 'f', '85'].includes(p.type)));
  const id = (t.id ?? '').toLowerCase().replace(/^0x/, '');
  return { type, id, sectorSize, partitions };
}

// ---- filesystems, from their superblocks ----

export type FsType = 'ext2' | 'ext3' | 'ext4' | 'vfat' | 'btrfs' | 'xfs' | 'f2fs' | 'squashfs' | 'swap' | 'unknown';

export interface FsInfo {
  fstype: FsType;
  label?: string;
  uuid?: string;
}

export const linuxFilesystems: FsType[] = ['ext2', 'ext3', 'ext4', 'btrfs', 'xfs', 'f2fs', 'squashfs'];

const uuidFrom = (b: Buffer) => {
  const h = b.toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
};
const cstr = (b: Buffer) => b.toString('latin1').replace(/\0.*$/s, '').trim();

/** Pure: the first 68 KiB of a partition. */
export function detectFilesystem(b: Buffer): FsInfo {
  if (b.length >= 1024 + 264 && b.readUInt16LE(1024 + 56) === 0xef53) {
    const sb = 1024;
    const compat = b.readUInt32LE(sb + 92);
    const incompat = b.readUInt32LE(sb + 96);
    // extents, 64bit, flex_bg mean ext4; a journal alone means ext3.
    const fstype: FsType = incompat & (0x40 | 0x80 | 0x200) ? 'ext4' : compat & 0x4 ? 'ext3' : 'ext2';
    const info: FsInfo = { fstype, uuid: uuidFrom(b.subarray(sb + 104, sb + 120)) };
    const label = cstr(b.subarray(sb + 120, sb + 136));
    if (label) info.label = label;
    return info;
  }
  if (b.length >= 512 && b[510] === 0x55 && b[511] === 0xaa) {
    const fat32 = b.toString('latin1', 82, 87) === 'FAT32';
    const fat16 = b.toString('latin1', 54, 57) === 'FAT';
    if (fat32 || fat16) {
      const labelAt = fat32 ? 71 : 43;
      const idAt = fat32 ? 67 : 39;
      const info: FsInfo = { fstype: 'vfat', uuid: b.readUInt32LE(idAt).toString(16).padStart(8, '0').toUpperCase().replace(/^(.{4})/, '$1-') };
      const label = cstr(b.subarray(labelAt, labelAt + 11));
      if (label && label !== 'NO NAME') info.label = label;
      return info;
    }
  }
  if (b.length >= 0x10048 && b.toString('latin1', 0x10040, 0x10048) === '_BHRfS_M') {
    const info: FsInfo = { fstype: 'btrfs', uuid: uuidFrom(b.subarray(0x10020, 0x10030)) };
    const label = cstr(b.subarray(0x1012b, 0x1012b + 256));
    if (label) info.label = label;
    return info;
  }
  if (b.toString('latin1', 0, 4) === 'XFSB') return { fstype: 'xfs' };
  if (b.toString('latin1', 0, 4) === 'hsqs') return { fstype: 'squashfs' };
  if (b.length >= 1028 && b.readUInt32LE(1024) === 0xf2f52010) return { fstype: 'f2fs' };
  if (b.length >= 4096 && b.toString('latin1', 4086, 4096) === 'SWAPSPACE2') return { fstype: 'swap' };
  return { fstype: 'unknown' };
}

export function readFilesystem(image: string, p: Partition): FsInfo {
  const fd = fs.openSync(image, 'r');
  try {
    const len = Math.min(0x11000, p.size);
    const buf = Buffer.alloc(len);
    fs.readSync(fd, buf, 0, len, p.start);
    return detectFilesystem(buf);
  } finally {
    fs.closeSync(fd);
  }
}
