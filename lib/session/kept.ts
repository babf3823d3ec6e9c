// `imgbuild mount IMAGE DIR` / `imgbuild umount DIR`: a kept session for work by hand (like PYNQ's
// mount_image.sh); its mounts live in the host's namespace, each journaled, undone by `umount`.
import fs from 'node:fs';
import path from 'node:path';
import { Attachment, type AttachStrategy, chooseStrategy } from '../host/attach.js';
import { probeCapabilities } from '../host/capabilities.js';
import { hostUndoer } from '../host/undoers.js';
import type { Context } from '../core/context.js';
import { CleanupError, PreconditionError } from '../core/errors.js';
import { stage } from '../core/events.js';
import { type ImageFile, bootCandidates, checkImageWritable, openImage, rootCandidates } from '../host/image.js';
import { rawImage } from '../host/unpack-image.js';
import { Journal, listJournals, readJournal } from '../undo/journal.js';
import { listLoops, loopsOfImage } from '../host/loop.js';
import { readMountinfo } from '../parse/mountinfo.js';
import { lockHolder } from '../host/namespace.js';
import { resolveInRoot } from '../host/safe-path.js';
import { bootMountpoint } from './boot.js';
import { detectRoot } from './root.js';
import { describeChange } from '../host/recover.js';
import type { Transaction } from '../undo/transaction.js';
import { openTransaction } from '../undo/open.js';

export interface KeptMount {
  session: string;
  image: string;
  dir: string;
  root: number;
  boot?: { partition: number; mountpoint: string; mounted: boolean };
}

function refuseIfBusy(image: ImageFile, loops: { name: string }[], stateDir: string): void {
  if (loops.length > 0) throw new PreconditionError(`${image.path} is already attached as ${loops.map((l) => l.name).join(', ')}`, 'unmount it first (imgbuild umount DIR), or run imgbuild recover after a crash');
  const holder = lockHolder(image.path);
  if (holder) throw new PreconditionError(`${image.path} is in use by another imgbuild session (process ${holder.pid})`, 'wait for it to finish');
  for (const j of listJournals(stateDir)) {
    if (j.kept && j.begin?.image && j.begin.image.ino === image.id.ino && j.begin.image.dev === image.id.dev) {
      throw new PreconditionError(`${image.path} is mounted at ${j.kept} by imgbuild`, `imgbuild umount ${j.kept}`);
    }
  }
}

export async function mountKept(ctx: Context, o: { image: string; dir: string; attach?: AttachStrategy | 'auto'; readOnly?: boolean; allowBlockDevice?: boolean }): Promise<KeptMount> {
  const raw = await rawImage(ctx, o.image, { writable: !o.readOnly });
  const image = await openImage(ctx.run, raw.path, { allowBlockDevice: o.allowBlockDevice });
  if (!o.readOnly) checkImageWritable(image.path, 'mount');
  const dir = path.resolve(o.dir);
  if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new PreconditionError(`${dir} is not a directory`, `create it first: mkdir ${dir}`);
  if (fs.readdirSync(dir).length > 0) throw new PreconditionError(`${dir} is not empty`, 'mount onto an empty directory, so nothing is hidden under the image');
  if (readMountinfo().some((m) => m.target === dir)) throw new PreconditionError(`${dir} is already a mount point`, 'choose another directory');
  const candidates = rootCandidates(image);
  if (candidates.length === 0) throw new PreconditionError(`no Linux root filesystem in ${image.path}`, 'imgbuild needs an image with an ext4 root partition');
  refuseIfBusy(image, loopsOfImage(await listLoops(ctx.run), image.id), ctx.stateDir);
  const caps = await probeCapabilities(ctx);
  const strategy = chooseStrategy(o.attach ?? 'auto', caps, image);

  const t = openTransaction(ctx, { verb: 'mount', image: { id: image.id, path: image.path }, undoer: hostUndoer(ctx) });
  const { tx, journal } = t;
  try {
    const attachment = new Attachment(tx, image, strategy, !!o.readOnly);
    let root: number | undefined;
    for (const cand of candidates) {
      const dev = await stage(ctx.emit, `attach partition ${cand.number} (${strategy})`, () => attachment.device(cand.number));
      await mountHost(tx, dev, dir, ['-t', cand.fstype, '-o', `${o.readOnly ? (cand.fstype.startsWith('ext') ? 'ro,noload' : 'ro') : 'rw'},${hostMountSafety}`]);
      if (detectRoot(dir).arch) {
        root = cand.number;
        break;
      }
      const failed = await tx.stack.unwindTop(1);
      if (failed.length > 0) throw new CleanupError(failed);
    }
    if (root === undefined) throw new PreconditionError(`no Linux root in ${image.path}: no partition holds /etc/os-release and /bin/sh`);
    let boot: KeptMount['boot'];
    const bootPart = bootCandidates(image)[0];
    if (bootPart) {
      const fstab = resolveInRoot(dir, '/etc/fstab');
      const mp = bootMountpoint(fstab.type === 'file' ? fs.readFileSync(fstab.host, 'utf8') : '', bootPart, image.table.id);
      const target = resolveInRoot(dir, mp);
      if (!caps.filesystems.includes('vfat')) {
        ctx.emit({ kind: 'warn', message: `boot partition ${bootPart.number} (vfat) not mounted at ${mp}: this kernel has no vfat support` });
        boot = { partition: bootPart.number, mountpoint: mp, mounted: false };
      } else if (target.inner !== mp || target.type !== 'dir') {
        ctx.emit({ kind: 'warn', message: `boot partition not mounted: ${mp} in the image is not a plain directory` });
        boot = { partition: bootPart.number, mountpoint: mp, mounted: false };
      } else {
        await mountHost(tx, await attachment.device(bootPart.number), target.host, ['-t', 'vfat', '-o', `${o.readOnly ? 'ro' : 'rw'},${hostMountSafety}`]);
        boot = { partition: bootPart.number, mountpoint: mp, mounted: true };
      }
    }
    journal.keep(dir);
    return { session: journal.id, image: image.path, dir, root, ...(boot ? { boot } : {}) };
  } catch (error) {
    await t.close(error);
    throw error;
  }
}

// A kept mount is reachable by every local user: a setuid-root program or device node from an
// untrusted image must not work there (as udisks mounts media).
const hostMountSafety = 'nosuid,nodev';

async function mountHost(tx: Transaction, dev: string, target: string, args: string[]): Promise<void> {
  await tx.change(`unmount ${target}`, { kind: 'mount', target, device: dev }, async () => {
    await tx.ctx.run('mount', [...args, dev, target]);
    const m = readMountinfo().filter((e) => e.target === target).at(-1);
    if (!m) throw new Error(`mount did not land at ${target}`);
    return { kind: 'mount', target, device: dev, mountId: m.id };
  });
}

/** Undo a kept session, found by the directory it is mounted at. */
export async function umountKept(ctx: Context, dirArg: string): Promise<string> {
  const dir = path.resolve(dirArg);
  const j = listJournals(ctx.stateDir).find((s) => s.kept === dir);
  if (!j) throw new PreconditionError(`no imgbuild mount at ${dir}`, 'imgbuild recover --dry-run lists what imgbuild still holds');
  const journal = Journal.open(j.file);
  const undo = hostUndoer(ctx);
  const failures = [];
  for (const p of readJournal(j.file).pending) {
    try {
      await undo(p.change, p.made);
      journal.undone(p.seq);
    } catch (error) {
      failures.push({ step: describeChange(p.change), error });
    }
  }
  if (failures.length > 0) throw new CleanupError(failures);
  journal.close();
  return j.begin?.imagePath ?? '';
}
