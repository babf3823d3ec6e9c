// Pure ELF header reading: which machine a binary is for, and its dynamic dependencies.
import { type Arch } from './arch.js';

export interface ElfHeader {
  class: 1 | 2;
  littleEndian: boolean;
  type: number;
  machine: number;
  flags: number;
}

export function readElfHeader(b: Buffer): ElfHeader | undefined {
  if (b.length < 52 || b.readUInt32BE(0) !== 0x7f454c46) return undefined;
  const cls = b[4];
  const le = b[5] === 1;
  if (cls !== 1 && cls !== 2) return undefined;
  const u16 = (o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
  const u32 = (o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
  return { class: cls, littleEndian: le, type: u16(16), machine: u16(18), flags: u32(cls === 2 ? 48 : 36) };
}

const EF_ARM_ABI_FLOAT_HARD = 0x400;

/** The userland architecture of an executable, or undefined if it is not one we know. */
export function elfArch(h: ElfHeader): Arch | undefined {
  if (!h.littleEndian) return undefined;
  switch (h.machine) {
    case 183:
      return h.class === 2 ? 'aarch64' : undefined;
    case 40:
      return h.flags & EF_ARM_ABI_FLOAT_HARD ? 'armhf' : 'armel';
    case 62:
      return h.class === 2 ? 'x86_64' : undefined;
    case 3:
      return 'i386';
    case 243:
      return h.class === 2 ? 'riscv64' : undefined;
    default:
      return undefined;
  }
}

export const elfMachineNames: Record<number, string> = { 3: 'i386', 40: 'arm', 62: 'x86_64', 183: 'aarch64', 243: 'riscv' };
