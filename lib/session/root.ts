// Finding the image's root: each Linux partition mounted in turn until one holds /etc/os-release
// and an ELF /bin/sh, whose machine gives the userland architecture.
import fs from 'node:fs';
import { type Arch, archTable } from '../core/arch.js';
import type { Attachment, AttachStrategy } from '../host/attach.js';
import { CleanupError, CommandError, PreconditionError } from '../core/errors.js';
import { type Emit, stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import type { ImageFile, ImagePartition } from '../host/image.js';
import type { Namespace } from '../host/namespace.js';
import { armCpuArch, runsOnArmv6 } from '../parse/arm-attributes.js';
import { elfArch, readElfHeader } from '../parse/elf.js';
import type { FsType } from '../parse/partitions.js';
import { readHead, resolveInRoot } from '../host/safe-path.js';
import type { Transaction } from '../undo/transaction.js';
import { mountIn } from './mounts.js';

/** Where to look for the root and how to mount each candidate. */
export interface RootSearch {
  tx: Transaction;
  ns: Namespace;
  attachment: Attachment;
  strategy: AttachStrategy;
  readOnly: boolean;
  /** Where each candidate is mounted, inside the namespace. */
  dir: string;
  /** Given the host path of each candidate the moment it is mounted (the session's undoer reads it). */
  live: { rootHost?: string };
}

const roOptions: Partial<Record<FsType, string>> = { ext2: 'ro', ext3: 'ro,noload', ext4: 'ro,noload', xfs: 'ro,norecovery', btrfs: 'ro,nologreplay' };

/** Mount the candidates in turn; the first that is a root stays mounted at `search.dir`. */
export async function findRoot(emit: Emit, image: ImageFile, candidates: readonly ImagePartition[], search: RootSearch): Promise<{ partition: ImagePartition; arch: Arch; machine: string }> {
  const { tx, ns, attachment, strategy, readOnly, dir } = search;
  for (const cand of candidates) {
    checkpoint('attach');
    const dev = await stage(emit, `attach partition ${cand.number} (${strategy})`, () => attachment.device(cand.number));
    const opts = readOnly ? (roOptions[cand.fstype] ?? 'ro') : 'rw';
    checkpoint('mount:root');
    try {
      await mountIn(tx, ns, `partition ${cand.number}`, ['-t', cand.fstype, '-o', `${opts},nodev`, dev], dir);
    } catch (error) {
      // The kernel refused the filesystem: the image is damaged (a corrupt superblock keeps its magic).
      if (!(error instanceof CommandError) || ns.exited) throw error;
      throw new PreconditionError(
        `partition ${cand.number} (${cand.fstype}) of ${image.path} cannot be mounted: ${error.output.trim().split('\n').slice(-2).join(' ') || `mount exit ${error.commandExitCode}`}`,
        'its filesystem is damaged or not what its signature says: check it with e2fsck -fn (imgbuild never repairs an image), or fetch the image again',
        { cause: error },
      );
    }
    search.live.rootHost = ns.hostPath(dir);
    const found = detectRoot(search.live.rootHost);
    if (found.arch) return { partition: cand, arch: found.arch, machine: found.machine ?? archTable[found.arch].wheelMachine };
    if (found.error) throw found.error;
    // Not a root: unmount it again before trying the next candidate.
    const failed = await tx.stack.unwindTop(1);
    if (failed.length > 0) throw new CleanupError(failed);
  }
  throw new PreconditionError(`no Linux root in ${image.path}: no partition holds /etc/os-release and /bin/sh`, 'is this a bootable Linux SD-card image?');
}

/** What makes a root: /etc/os-release (or /usr/lib/os-release) and an ELF /bin/sh we can name. */
export function detectRoot(rootHost: string): { arch?: Arch; machine?: string; error?: Error } {
  const osr = resolveInRoot(rootHost, '/etc/os-release');
  const osr2 = resolveInRoot(rootHost, '/usr/lib/os-release');
  const sh = resolveInRoot(rootHost, '/bin/sh');
  if ((osr.type !== 'file' && osr2.type !== 'file') || sh.type !== 'file') return {};
  const header = readHead(sh.host, 64);
  const elf = readElfHeader(header);
  if (!elf) return { error: new PreconditionError(`/bin/sh in the image is not an ELF executable`, 'is the root filesystem damaged?') };
  const arch = elfArch(elf);
  if (!arch) return { error: new PreconditionError(`unknown userland architecture in the image (ELF machine ${elf.machine}, class ${elf.class})`, 'imgbuild supports aarch64, armhf, armel, x86_64, i386 and riscv64 images') };
  return arch === 'armhf' && armv6Userland(sh.host) ? { arch, machine: 'armv6l' } : { arch };
}

// Raspberry Pi OS (32-bit) is armhf built for ARMv6 with VFP, for the Pi Zero and 1: its wheels
// are linux_armv6l (pip there accepts no other), as piwheels builds them. Debian's armhf is ARMv7.
function armv6Userland(shHost: string): boolean {
  try {
    if (fs.statSync(shHost).size > 16 * 1024 * 1024) return false;
    const cpu = armCpuArch(fs.readFileSync(shHost));
    return cpu !== undefined && runsOnArmv6(cpu);
  } catch {
    return false;
  }
}
