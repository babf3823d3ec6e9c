// Opening a session as named steps: check the image, transaction, workdir, namespace and lock, root,
// overlay, then for chroots boot, system mounts, workspace, chroot files and emulation.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, needsEmulation } from '../core/arch.js';
import { Attachment, type AttachStrategy, chooseStrategy } from '../host/attach.js';
import { enableEmulation, hostBinfmtDir } from '../host/binfmt.js';
import { type Capabilities, probeCapabilities } from '../host/capabilities.js';
import { makeUndoer } from '../host/undoers.js';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { type Emit, stage } from '../core/events.js';
import { checkpoint } from '../core/fault.js';
import { fileId } from '../core/identity.js';
import { checkImageWritable, type ImageFile, type ImagePartition, openImage, rootCandidates } from '../host/image.js';
import { rawImage } from '../host/unpack-image.js';
import { type Journal, listJournals, sessionAlive } from '../undo/journal.js';
import { listLoops, loopsOfImage } from '../host/loop.js';
import { inUseError, lockHolder, Namespace } from '../host/namespace.js';
import type { Transaction } from '../undo/transaction.js';
import { type OpenTransaction, openTransaction } from '../undo/open.js';
import { type BootMount, mountBoot } from './boot.js';
import { provideChrootFiles } from './chroot-files.js';
import { type MountCtx, mountIn, mountpoint, mountSystem } from './mounts.js';
import { mountOverlay } from './overlay.js';
import { chooseInterpreter } from './pythons.js';
import { findRoot } from './root.js';
import { Session, type SessionOptions } from './session.js';
import { ensureEnter } from '../host/enter.js';

// What the session's undoer reaches while the session comes up.
interface Live {
  ns?: Namespace;
  rootHost?: string;
}

/** Open a session, run `fn` in it, and always close it (reporting a cleanup failure with the primary error). */
export async function withSession<T>(ctx: Context, o: SessionOptions, fn: (s: Session) => Promise<T>): Promise<T> {
  const session = await openSession(ctx, o);
  let result: T;
  try {
    result = await fn(session);
  } catch (error) {
    await session.close(error);
    throw error;
  }
  await session.close();
  return result;
}

export async function openSession(ctx: Context, o: SessionOptions): Promise<Session> {
  const { image, candidates, caps, strategy } = await checkImage(ctx, o);
  // Built (once) before anything on the host changes: without it nothing can run in the image.
  const enter = await ensureEnter(ctx);
  const live: Live = {};
  const t = openSessionTransaction(ctx, o.verb, image, live);
  const { tx, journal } = t;
  try {
    const workdir = await makeWorkdir(ctx, t);
    const ns = await lockAndEnterNamespace(ctx, tx, image, live);
    const readOnly = o.mode !== 'rw';
    const attachment = new Attachment(tx, image, strategy, readOnly);
    const { root, lower, upper } = makeMountDirs(workdir);
    const imageRoot = o.mode === 'overlay' ? lower : root;
    const found = await findRoot(ctx.emit, image, candidates, { tx, ns, attachment, strategy, readOnly, dir: imageRoot, live });
    if (o.mode === 'overlay') {
      await mountOverlay(tx, ns, { lower, upperTmpfs: upper, root }, o.upper);
      live.rootHost = ns.hostPath(root);
    }

    let boot: BootMount | undefined;
    if (o.mode === 'inspect') await attachment.autoclear();
    else {
      const p = found.partition;
      const where = { image: image.id, imagePath: image.path, offset: p.start, sizelimit: p.size, fstype: p.fstype };
      const m: MountCtx = { tx, ns, root, rootHost: live.rootHost!, journal, rw: o.mode === 'rw', where };
      boot = await setUpChroot(ctx.emit, o, m, { attachment, image, caps, workdir, arch: found.arch });
    }
    stopProcessesFirst(tx, ns);
    const workspace = o.workspace ? path.resolve(o.workspace) : undefined;
    const python = o.python ? chooseInterpreter(live.rootHost!, image.path, o.python) : undefined;
    return new Session({ transaction: t, ns, image, strategy, rootPartition: found.partition, arch: found.arch, machine: found.machine, root, mode: o.mode, boot, workspace, imageRoot, enter, privileged: o.privileged === true, ...(python ? { python } : {}) });
  } catch (error) {
    await t.close(error);
    throw error;
  }
}

async function checkImage(ctx: Context, o: SessionOptions): Promise<{ image: ImageFile; candidates: ImagePartition[]; caps: Capabilities; strategy: AttachStrategy }> {
  const { emit, run } = ctx;
  // The loop list is read while the partition table is (two processes, no order between them).
  const loops = listLoops(run).then(
    (list) => ({ list }),
    (error: unknown) => ({ error }),
  );
  // An image as it ships (.img.xz, .zip, ...) is opened as its decompressed copy in the cache.
  const raw = await rawImage(ctx, o.image, { writable: o.mode === 'rw' });
  const image = await stage(emit, 'read partition table', () => openImage(run, raw.path, { allowBlockDevice: o.allowBlockDevice }));
  if (o.mode === 'rw') checkImageWritable(image.path, o.verb);
  const candidates = rootCandidates(image);
  if (candidates.length === 0) {
    const seen = image.partitions.map((p) => `p${p.number} ${p.fstype}`).join(', ');
    throw new PreconditionError(`no Linux root filesystem in ${image.path} (partitions: ${seen})`, 'imgbuild needs an image with an ext4 (or other Linux) root partition');
  }
  if (o.upper && /[,:\\\s]/.test(o.upper)) throw new PreconditionError(`overlay directory ${o.upper} has a comma, colon, backslash or space`, 'choose a plain path');
  if (o.workspace) {
    if (!fs.existsSync(o.workspace) || !fs.statSync(o.workspace).isDirectory()) {
      throw new PreconditionError(`workspace ${o.workspace} is not a directory`, 'create it first, or pass an existing directory to --workspace');
    }
  }
  checkNoDeadSessions(ctx.stateDir);
  const caps = await probeCapabilities(ctx);
  const strategy = chooseStrategy(o.attach ?? 'auto', caps, image);
  if (lockHolder(image.path)) throw inUseError(image.path, ctx.stateDir);
  const listed = await loops;
  if ('error' in listed) throw listed.error;
  const inUse = loopsOfImage(listed.list, image.id);
  if (inUse.length > 0) {
    throw new PreconditionError(
      `${image.path} is already attached as ${inUse.map((l) => l.name).join(', ')}`,
      'it is in use by another tool or an `imgbuild mount` session: unmount it first (imgbuild umount DIR, or losetup -d for a loop you made), or run `imgbuild recover` after a crash',
    );
  }
  return { image, candidates, caps, strategy };
}

// A session killed with kill -9 leaves its loop devices, partition nodes and binfmt entry until
// `imgbuild recover`: a new one on top of them would trip over them (a loop number reused with
// stale partition nodes makes partx fail). Say so, before anything is changed.
function checkNoDeadSessions(stateDir: string): void {
  const dead = listJournals(stateDir).filter((j) => !j.kept && j.pending.length > 0 && !sessionAlive(j));
  if (dead.length === 0) return;
  const names = dead.map((j) => `${path.basename(j.file, '.journal')}${j.begin ? ` (imgbuild ${j.begin.verb}, process ${j.begin.owner.pid})` : ''}`);
  throw new PreconditionError(`a killed imgbuild session left changes on this host: ${names.join(', ')}`, 'run `imgbuild recover` first: it undoes them (imgbuild recover --dry-run shows what)');
}

function openSessionTransaction(ctx: Context, verb: string, image: ImageFile, live: Live): OpenTransaction<Journal> {
  return openTransaction(ctx, {
    verb,
    image: { id: image.id, path: image.path },
    undoer: makeUndoer({
      run: ctx.run,
      binfmtDir: async () => (live.ns ? live.ns.binfmtDir() : hostBinfmtDir),
      imageRoot: () => live.rootHost,
      nsPids: () => (live.ns ? [live.ns.pid] : []),
    }),
    stage: true,
    strict: true,
  });
}

async function makeWorkdir(ctx: Context, t: OpenTransaction<Journal>): Promise<string> {
  const workdir = path.join(ctx.stateDir, 'sessions', `${t.journal.id}.d`);
  await t.tx.change('remove session directory', { kind: 'workdir', path: workdir }, async () => {
    fs.mkdirSync(workdir, { mode: 0o700 });
    return { kind: 'workdir', path: workdir, id: fileId(workdir) };
  });
  return workdir;
}

function makeMountDirs(workdir: string): { root: string; lower: string; upper: string } {
  const [root, lower, upper] = ['root', 'lower', 'upper'].map((d) => path.join(workdir, d)) as [string, string, string];
  for (const d of [root, lower, upper]) fs.mkdirSync(d);
  return { root, lower, upper };
}

async function lockAndEnterNamespace(ctx: Context, tx: Transaction, image: ImageFile, live: Live): Promise<Namespace> {
  checkpoint('lock');
  const held = await stage(ctx.emit, 'lock image and enter private namespace', () => Namespace.open(ctx, { lock: image.path, ...(tx.journal ? { journal: tx.journal } : {}) }));
  live.ns = held;
  tx.defer('end the session namespace and release the lock', async () => {
    checkpoint('teardown:unlock');
    await held.close();
  });
  return held;
}

async function setUpChroot(
  emit: Emit,
  o: SessionOptions,
  m: MountCtx,
  c: { attachment: Attachment; image: ImageFile; caps: Capabilities; workdir: string; arch: Arch },
): Promise<BootMount | undefined> {
  const boot = await mountBoot(m, c.attachment, c.image, c.caps.filesystems);
  await c.attachment.autoclear();
  await stage(emit, 'mount /proc /sys /dev /run /tmp', () => mountSystem(m, !!o.hostPts));
  if (o.workspace) {
    const ws = path.resolve(o.workspace);
    const target = await mountpoint(m, '/workspace', 'mount:workspace');
    await mountIn(m.tx, m.ns, '/workspace', ['--bind', '-o', 'nosuid,nodev', ws], target);
  }
  await provideChrootFiles(emit, m, c.workdir);
  if (needsEmulation(c.arch)) {
    checkpoint('binfmt');
    const dir = await m.ns.binfmtDir();
    await stage(emit, `enable ${c.arch} emulation`, () => enableEmulation(m.tx, dir, c.arch, m.journal.id));
  }
  return boot;
}

function stopProcessesFirst(tx: Transaction, ns: Namespace): void {
  // Registered last, so it runs first: nothing may hold the mounts when they are unmounted.
  tx.defer('stop processes in the session', async () => {
    checkpoint('teardown:processes');
    await ns.killAll();
  });
}
