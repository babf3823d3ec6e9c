// Pure: the ARM architecture an ELF32 object was built for, from its .ARM.attributes section
// (the "aeabi" build attributes, Tag_CPU_arch): an ARMv7 object may not run on an ARMv6 board
// (Raspberry Pi Zero and 1, whose userland Raspberry Pi OS builds for ARMv6 with VFP).

const SHT_ARM_ATTRIBUTES = 0x70000003;
const TAG_FILE = 1;
const TAG_CPU_ARCH = 6;

/** Tag_CPU_arch values (ARM IHI 0045) by name, for messages. */
export const armCpuArchNames: Record<number, string> = {
  0: 'pre-v4', 1: 'v4', 2: 'v4T', 3: 'v5T', 4: 'v5TE', 5: 'v5TEJ', 6: 'v6', 7: 'v6KZ', 8: 'v6T2', 9: 'v6K', 10: 'v7', 11: 'v6-M', 12: 'v6S-M', 13: 'v7E-M', 14: 'v8-A',
};

/** Whether a Tag_CPU_arch value runs on an ARMv6 (ARM1176) core: v6, v6KZ, v6K and older A/R-profile. */
export function runsOnArmv6(cpuArch: number): boolean {
  return cpuArch <= 7 || cpuArch === 9;
}

/** Tag_CPU_arch of a little-endian ELF32 ARM file, or undefined (not one, no attributes, damaged). */
export function armCpuArch(b: Buffer): number | undefined {
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46 || b[4] !== 1 || b[5] !== 1 || b.readUInt16LE(18) !== 40) return undefined;
  const shoff = b.readUInt32LE(32);
  const entsize = b.readUInt16LE(46);
  const count = b.readUInt16LE(48);
  if (!shoff || entsize < 40 || shoff + count * entsize > b.length) return undefined;
  for (let i = 0; i < count; i++) {
    const s = shoff + i * entsize;
    if (b.readUInt32LE(s + 4) !== SHT_ARM_ATTRIBUTES) continue;
    const offset = b.readUInt32LE(s + 16);
    const size = b.readUInt32LE(s + 20);
    if (offset + size > b.length) return undefined;
    return cpuArchIn(b.subarray(offset, offset + size));
  }
  return undefined;
}

// 'A', then subsections: length (u32, itself included), vendor name (NUL-ended), then
// sub-subsections: tag (1 = the whole file), length (u32), attributes (tag, value) in ULEB128.
function cpuArchIn(sec: Buffer): number | undefined {
  if (sec[0] !== 0x41) return undefined;
  let p = 1;
  while (p + 4 <= sec.length) {
    const len = sec.readUInt32LE(p);
    if (len < 5 || p + len > sec.length) return undefined;
    const end = p + len;
    const nul = sec.indexOf(0, p + 4);
    if (nul < 0 || nul >= end) return undefined;
    if (sec.toString('latin1', p + 4, nul) === 'aeabi') return fileCpuArch(sec, nul + 1, end);
    p = end;
  }
  return undefined;
}

function fileCpuArch(sec: Buffer, start: number, end: number): number | undefined {
  let p = start;
  while (p + 5 <= end) {
    const tag = sec[p]!;
    const len = sec.readUInt32LE(p + 1);
    if (len < 5 || p + len > end) return undefined;
    if (tag === TAG_FILE) return attribute(sec, p + 5, p + len);
    p += len;
  }
  return undefined;
}

function attribute(sec: Buffer, start: number, end: number): number | undefined {
  let p = start;
  const uleb = (): number | undefined => {
    let v = 0;
    for (let shift = 0; p < end && shift < 35; shift += 7) {
      const byte = sec[p++]!;
      v += (byte & 0x7f) * 2 ** shift;
      if (!(byte & 0x80)) return v;
    }
    return undefined;
  };
  while (p < end) {
    const tag = uleb();
    if (tag === undefined) return undefined;
    if (tag === TAG_CPU_ARCH) return uleb();
    // Strings: Tag_CPU_raw_name (4), Tag_CPU_name (5), Tag_also_compatible_with (65) and odd tags
    // from 32 up; Tag_compatibility (32) is a number then a string; the rest are numbers.
    if (tag === 4 || tag === 5 || tag === 67 || (tag >= 32 && tag % 2 === 1)) {
      const nul = sec.indexOf(0, p);
      if (nul < 0 || nul >= end) return undefined;
      p = nul + 1;
    } else if (tag === 32) {
      if (uleb() === undefined) return undefined;
      const nul = sec.indexOf(0, p);
      if (nul < 0 || nul >= end) return undefined;
      p = nul + 1;
    } else if (uleb() === undefined) return undefined;
  }
  return undefined;
}
