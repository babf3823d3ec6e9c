// The image's boot partition: where its fstab puts it, and mounting it there in the chroot
// (read-only unless the session writes to the image).
import fs from 'node:fs';
import type { Attachment } from '../host/attach.js';
import { type ImageFile, type ImagePartition, bootCandidates } from '../host/image.js';
import { resolveInRoot } from '../host/safe-path.js';
import { type MountCtx, mountIn, mountpoint } from './mounts.js';

export interface BootMount {
  partition: ImagePartition;
  mountpoint: string;
  mounted: boolean;
  reason?: string;
}

/** Where the image's fstab mounts its boot partition (PYNQ: /boot; Raspberry Pi OS 12: /boot/firmware). */
export function bootMountpoint(fstab: string, boot: ImagePartition, diskId: string): string {
  for (const line of fstab.split('\n')) {
    const f = line.replace(/#.*/, '').trim().split(/\s+/);
    if (f.length < 3) continue;
    const [src, mp, type] = f as [string, string, string];
    const srcU = src.toUpperCase();
    const matches =
      (boot.label && srcU === `LABEL=${boot.label.toUpperCase()}`) ||
      (boot.uuid && srcU === `UUID=${boot.uuid.toUpperCase()}`) ||
      (boot.partuuid && srcU === `PARTUUID=${boot.partuuid.toUpperCase()}`) ||
      srcU === `PARTUUID=${diskId.toUpperCase()}-${String(boot.number).padStart(2, '0')}` ||
      new RegExp(`^/dev/(mmcblk\\d+p|sd[a-z]|vd[a-z])${boot.number}$`).test(src) ||
      type === 'vfat';
    if (matches && mp.startsWith('/')) return mp;
  }
  return '/boot';
}

/** Mount the boot partition where the image's fstab says; undefined when the image has none. */
export async function mountBoot(m: MountCtx, attachment: Attachment, image: ImageFile, filesystems: string[]): Promise<BootMount | undefined> {
  const part = bootCandidates(image)[0];
  if (!part) return undefined;
  const fstab = resolveInRoot(m.rootHost, '/etc/fstab');
  const mp = bootMountpoint(fstab.type === 'file' ? fs.readFileSync(fstab.host, 'utf8') : '', part, image.table.id);
  if (!filesystems.includes('vfat')) {
    const reason = 'this kernel has no vfat support';
    m.tx.emit({ kind: 'warn', message: `boot partition ${part.number} (vfat) not mounted at ${mp}: ${reason}; ${mp} shows the root filesystem's own directory` });
    return { partition: part, mountpoint: mp, mounted: false, reason };
  }
  const target = await mountpoint(m, mp, 'mount:boot');
  const dev = await attachment.device(part.number);
  const opts = m.rw ? 'rw,nosuid,nodev' : 'ro,nosuid,nodev';
  await mountIn(m.tx, m.ns, mp, ['-t', 'vfat', '-o', opts, dev], target);
  return { partition: part, mountpoint: mp, mounted: true };
}
