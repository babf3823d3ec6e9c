// Userland architectures imgbuild knows: ELF identity, qemu-user name, wheel platform tag.

export type Arch = 'aarch64' | 'armhf' | 'armel' | 'x86_64' | 'i386' | 'riscv64';

export interface ArchInfo {
  arch: Arch;
  /** Debian's name for it. */
  debian: string;
  /** The qemu-user binary suffix (qemu-<name>-static). */
  qemu: string;
  /** e_ident class (1 = 32-bit, 2 = 64-bit) and e_machine. */
  elfClass: 1 | 2;
  elfMachine: number;
  /** The wheel platform tag's machine part (linux_<tag>). */
  wheelMachine: string;
  /** The GNU triplet Debian uses for multiarch paths. */
  triplet: string;
  /** Host kernel machine names that run this userland natively. */
  native: string[];
}

export const archTable: Record<Arch, ArchInfo> = {
  aarch64: { arch: 'aarch64', debian: 'arm64', qemu: 'aarch64', elfClass: 2, elfMachine: 183, wheelMachine: 'aarch64', triplet: 'aarch64-linux-gnu', native: ['aarch64'] },
  armhf: { arch: 'armhf', debian: 'armhf', qemu: 'arm', elfClass: 1, elfMachine: 40, wheelMachine: 'armv7l', triplet: 'arm-linux-gnueabihf', native: ['armv7l'] },
  armel: { arch: 'armel', debian: 'armel', qemu: 'arm', elfClass: 1, elfMachine: 40, wheelMachine: 'armv6l', triplet: 'arm-linux-gnueabi', native: ['armv6l', 'armv7l'] },
  x86_64: { arch: 'x86_64', debian: 'amd64', qemu: 'x86_64', elfClass: 2, elfMachine: 62, wheelMachine: 'x86_64', triplet: 'x86_64-linux-gnu', native: ['x86_64'] },
  i386: { arch: 'i386', debian: 'i386', qemu: 'i386', elfClass: 1, elfMachine: 3, wheelMachine: 'i686', triplet: 'i386-linux-gnu', native: ['x86_64', 'i686'] },
  riscv64: { arch: 'riscv64', debian: 'riscv64', qemu: 'riscv64', elfClass: 2, elfMachine: 243, wheelMachine: 'riscv64', triplet: 'riscv64-linux-gnu', native: ['riscv64'] },
};

/** Accepts imgbuild, Debian and uname spellings: arm64, armv7l, amd64, ... */
export function parseArch(name: string): Arch | undefined {
  const n = name.toLowerCase();
  const aliases: Record<string, Arch> = {
    aarch64: 'aarch64', arm64: 'aarch64', armhf: 'armhf', armv7l: 'armhf', armv7: 'armhf', armel: 'armel', armv6l: 'armel',
    x86_64: 'x86_64', amd64: 'x86_64', i386: 'i386', i686: 'i386', riscv64: 'riscv64',
  };
  return aliases[n];
}

/** The canonical 20-byte ELF header prefix binfmt_misc matches for an executable of this arch. */
export function binfmtMagic(info: ArchInfo): { magic: Buffer; mask: Buffer } {
  const magic = Buffer.alloc(20);
  magic.set([0x7f, 0x45, 0x4c, 0x46, info.elfClass, 1, 1, 0]);
  magic.writeUInt16LE(2, 16); // ET_EXEC (the mask also admits ET_DYN = 3)
  magic.writeUInt16LE(info.elfMachine, 18);
  const mask = Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe, 0xff, 0xff, 0xff]);
  return { magic, mask };
}

export function hostMachine(): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', arm: 'armv7l', ia32: 'i686', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

export function needsEmulation(arch: Arch, machine = hostMachine()): boolean {
  return !archTable[arch].native.includes(machine);
}
