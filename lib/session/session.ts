// A session: the image attached, its root mounted in a private namespace, and (for chroot
// sessions) /proc, /sys, /dev, /run, /tmp, the workspace, resolv.conf, policy-rc.d and binfmt
// set up. Every step registers its undo the moment it succeeds; close() unwinds them all.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, needsEmulation } from '../core/arch.js';
import { Attachment, type AttachStrategy, chooseStrategy } from '../host/attach.js';
import { enableEmulation, hostBinfmtDir } from '../host/binfmt.js';
import { probeCapabilities } from '../host/capabilities.js';
import { makeUndoer } from '../host/undoers.js';
import { createMemoryCgroup, type MemoryCgroup, probeMemoryCgroup } from '../host/cgroup.js';
import type { Context } from '../core/context.js';
import { elfArch, readElfHeader } from '../parse/elf.js';
import { CleanupError, interruptedBy, PreconditionError } from '../core/errors.js';
import { stage } from '../core/events.js';
import { checkpoint, type FaultStep } from '../core/fault.js';
import { type FileId, fileId } from '../core/identity.js';
import { type ImageFile, type ImagePartition, bootCandidates, openImage, rootCandidates } from '../host/image.js';
import { Journal } from '../undo/journal.js';
import { listLoops, loopsOfImage } from '../host/loop.js';
import { inUseError, lockHolder, Namespace } from '../host/namespace.js';
import type { FsType } from '../parse/partitions.js';
import type { RunOptions, RunResult } from '../core/runner.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { Transaction } from '../undo/transaction.js';
import { type OpenTransaction, openTransaction } from '../undo/open.js';

/** inspect: root read-only, nothing else. overlay: image read-only under a writable layer. rw: writes reach the image. */
export type SessionMode = 'inspect' | 'overlay' | 'rw';

export interface SessionOptions {
  image: string;
  mode: SessionMode;
  verb: string;
  attach?: AttachStrategy | 'auto';
  /** Host directory bound at /workspace (nosuid, nodev). */
  workspace?: string;
  /** Host directory holding the overlay's upper layer (default: a tmpfs that dies with the session). */
  upper?: string;
  allowBlockDevice?: boolean;
  /**
   * Bind the host's /dev/pts instead of a private devpts, so a terminal handed to the chroot
   * (imgbuild shell, run on a TTY) is a tty there too.
   */
  hostPts?: boolean;
}

export interface BootMount {
  partition: ImagePartition;
  mountpoint: string;
  mounted: boolean;
  reason?: string;
}

export interface ExecOptions extends Omit<RunOptions, 'env' | 'cwd'> {
  env?: Record<string, string>;
  /** Working directory inside the chroot (default /workspace when bound, else /). */
  cwd?: string;
}

export const chrootPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class Session {
  private closed = false;
  /** Set by limitMemory(): every later exec runs inside it. */
  memory: MemoryCgroup | undefined;

  constructor(
    private readonly t: OpenTransaction<Journal>,
    readonly ns: Namespace,
    readonly image: ImageFile,
    readonly strategy: AttachStrategy,
    readonly rootPartition: ImagePartition,
    readonly arch: Arch,
    /** The chroot root, as a path inside the namespace. */
    readonly root: string,
    readonly mode: SessionMode,
    readonly boot: BootMount | undefined,
    readonly workspace: string | undefined,
    /** The image's own root as mounted (the overlay's lower layer, or the root itself), inside the namespace. */
    readonly imageRoot: string,
  ) {}

  get id(): string {
    return this.t.journal.id;
  }

  /** Host path (through the namespace) of a file in the image, resolved inside the image root. */
  file(inner: string): string {
    return resolveInRoot(this.ns.hostPath(this.root), inner).host;
  }

  /**
   * Run a command in the chroot, in a PID namespace of its own: daemons it leaves die with it. Its
   * /proc is that namespace's own (--mount-proc, after the chroot), so PID 1 there is the command
   * and /proc/1/root is the image root: never the holder, whose root is the host's /.
   */
  exec(argv: readonly string[], options: ExecOptions = {}): Promise<RunResult> {
    checkpoint('chroot');
    const cwd = options.cwd ?? (this.workspace ? '/workspace' : '/');
    const env: Record<string, string> = {
      PATH: chrootPath,
      HOME: '/root',
      LANG: 'C.UTF-8',
      TERM: process.env.TERM ?? 'dumb',
      ...options.env,
    };
    const { cwd: _c, env: _e, ...rest } = options;
    const inner = ['unshare', '--pid', '--fork', '--kill-child', '--mount-proc', `--root=${this.root}`, `--wd=${cwd}`, '--', ...argv];
    const [cmd, ...args] = this.memory ? this.memory.wrap(inner) : inner;
    return this.ns.exec(cmd!, args, {
      ...rest,
      pidns: true,
      env,
      extendEnv: false,
    });
  }

  /**
   * Run every later command under a memory limit (a cgroup of our own, journaled, removed at
   * close), so an out-of-memory build is killed instead of the host's processes. Returns why
   * not when the host cannot.
   */
  async limitMemory(limitBytes: number): Promise<{ ok: true; cgroup: MemoryCgroup } | { ok: false; reason: string }> {
    const probe = probeMemoryCgroup();
    if (!probe.ok) return { ok: false, reason: `${probe.reason} (${probe.fix})` };
    this.memory = await createMemoryCgroup(this.t.tx, { session: this.id, limitBytes, probe });
    return { ok: true, cgroup: this.memory };
  }

  /** Register an undo step in the session's transaction (it runs before everything opened earlier is undone). */
  defer(label: string, fn: () => Promise<void> | void): void {
    this.t.tx.defer(label, fn);
  }

  /** Undo everything, newest first. Throws CleanupError naming each step that failed. */
  async close(primary?: unknown): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.t.close(primary);
  }
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

const roOptions: Partial<Record<FsType, string>> = { ext2: 'ro', ext3: 'ro,noload', ext4: 'ro,noload', xfs: 'ro,norecovery', btrfs: 'ro,nologreplay' };

export async function openSession(ctx: Context, o: SessionOptions): Promise<Session> {
  const { emit, run } = ctx;
  // The loop list is read while the partition table is (two processes, no order between them).
  const loops = listLoops(run).then(
    (list) => ({ list }),
    (error: unknown) => ({ error }),
  );
  const image = await stage(emit, 'read partition table', () => openImage(run, o.image, { allowBlockDevice: o.allowBlockDevice }));
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

  let ns: Namespace | undefined;
  let rootHost: string | undefined;
  const t = openTransaction(ctx, {
    verb: o.verb,
    image: { id: image.id, path: image.path },
    undoer: makeUndoer({
      run,
      binfmtDir: async () => (ns ? ns.binfmtDir() : hostBinfmtDir),
      imageRoot: () => rootHost,
      nsPids: () => (ns ? [ns.pid] : []),
    }),
    stage: true,
    strict: true,
  });
  const { tx, journal } = t;
  const workdir = path.join(ctx.stateDir, 'sessions', `${journal.id}.d`);
  try {
    await tx.change('remove session directory', { kind: 'workdir', path: workdir }, async () => {
      fs.mkdirSync(workdir, { mode: 0o700 });
      return { kind: 'workdir', path: workdir, id: fileId(workdir) };
    });

    checkpoint('lock');
    const held = await stage(emit, 'lock image and enter private namespace', () => Namespace.open(ctx, { lock: image.path }));
    ns = held;
    tx.defer('end the session namespace and release the lock', async () => {
      checkpoint('teardown:unlock');
      await held.close();
    });

    const readOnly = o.mode !== 'rw';
    const attachment = new Attachment(tx, image, strategy, readOnly);
    const mnt = (name: string) => path.join(workdir, name);
    for (const d of ['root', 'lower', 'upper']) fs.mkdirSync(mnt(d));

    // Find the root: the Linux partition that holds /etc/os-release and /bin/sh.
    let rootPart: ImagePartition | undefined;
    let arch: Arch | undefined;
    const imageRootDir = o.mode === 'overlay' ? mnt('lower') : mnt('root');
    for (const cand of candidates) {
      checkpoint('attach');
      const dev = await stage(emit, `attach partition ${cand.number} (${strategy})`, () => attachment.device(cand.number));
      const opts = readOnly ? (roOptions[cand.fstype] ?? 'ro') : 'rw';
      checkpoint('mount:root');
      await mountIn(tx, held, `partition ${cand.number}`, ['-t', cand.fstype, '-o', `${opts},nodev`, dev], imageRootDir);
      rootHost = held.hostPath(imageRootDir);
      const found = detectRoot(rootHost);
      if (found.arch) {
        rootPart = cand;
        arch = found.arch;
        break;
      }
      if (found.error) throw found.error;
      // Not a root: unmount it again before trying the next candidate.
      const failed = await tx.stack.unwindTop(1);
      if (failed.length > 0) throw new CleanupError(failed);
    }
    if (!rootPart || !arch) {
      throw new PreconditionError(`no Linux root in ${image.path}: no partition holds /etc/os-release and /bin/sh`, 'is this a bootable Linux SD-card image?');
    }

    let root = mnt('root');
    if (o.mode === 'overlay') {
      let upper: string;
      if (o.upper) {
        upper = path.resolve(o.upper);
      } else {
        await mountIn(tx, held, 'overlay upper tmpfs', ['-t', 'tmpfs', '-o', 'mode=0700,nosuid', 'imgbuild-upper'], mnt('upper'));
        upper = mnt('upper');
      }
      for (const d of ['data', 'work']) fs.mkdirSync(path.join(held.hostPath(upper), d), { recursive: true });
      // overlayfs opens device nodes by its own mount flags, not the lower layer's: nodev here too.
      await mountIn(tx, held, 'overlay root', ['-t', 'overlay', '-o', `nodev,lowerdir=${mnt('lower')},upperdir=${upper}/data,workdir=${upper}/work`, 'imgbuild-root'], root);
      rootHost = held.hostPath(root);
    } else {
      root = imageRootDir;
    }

    let boot: BootMount | undefined;
    if (o.mode === 'inspect') await attachment.autoclear();
    else {
      const where = { image: image.id, imagePath: image.path, offset: rootPart.start, sizelimit: rootPart.size, fstype: rootPart.fstype };
      const ctxm = { tx, ns: held, root, rootHost: rootHost!, journal, rw: o.mode === 'rw', where };
      boot = await mountBoot(ctxm, attachment, image, caps.filesystems);
      await attachment.autoclear();
      await stage(emit, 'mount /proc /sys /dev /run /tmp', () => mountSystem(ctxm, !!o.hostPts));
      if (o.workspace) {
        const ws = path.resolve(o.workspace);
        const target = await mountpoint(ctxm, '/workspace', 'mount:workspace');
        await mountIn(tx, held, '/workspace', ['--bind', '-o', 'nosuid,nodev', ws], target);
      }
      await stage(emit, 'provide resolv.conf', () => bindFileOver(ctxm, '/etc/resolv.conf', hostResolvConf(), path.join(workdir, 'resolv.conf'), 0o644, 'resolv'));
      await bindFileOver(ctxm, '/usr/sbin/policy-rc.d', '#!/bin/sh\n# imgbuild: no services start in a build chroot\nexit 101\n', path.join(workdir, 'policy-rc.d'), 0o755, 'policy-rc.d');
      if (needsEmulation(arch)) {
        checkpoint('binfmt');
        const dir = await held.binfmtDir();
        await stage(emit, `enable ${arch} emulation`, () => enableEmulation(tx, dir, arch!, journal.id));
      }
    }
    // Registered last, so it runs first: nothing may hold the mounts when they are unmounted.
    tx.defer('stop processes in the session', async () => {
      checkpoint('teardown:processes');
      await held.killAll();
    });
    return new Session(t, held, image, strategy, rootPart, arch, root, o.mode, boot, o.workspace ? path.resolve(o.workspace) : undefined, imageRootDir);
  } catch (error) {
    await t.close(error);
    throw error;
  }
}

/** What makes a root: /etc/os-release (or /usr/lib/os-release) and an ELF /bin/sh we can name. */
export function detectRoot(rootHost: string): { arch?: Arch; error?: Error } {
  const osr = resolveInRoot(rootHost, '/etc/os-release');
  const osr2 = resolveInRoot(rootHost, '/usr/lib/os-release');
  const sh = resolveInRoot(rootHost, '/bin/sh');
  if ((osr.type !== 'file' && osr2.type !== 'file') || sh.type !== 'file') return {};
  const header = readHead(sh.host, 64);
  const elf = readElfHeader(header);
  if (!elf) return { error: new PreconditionError(`/bin/sh in the image is not an ELF executable`, 'is the root filesystem damaged?') };
  const arch = elfArch(elf);
  if (!arch) return { error: new PreconditionError(`unknown userland architecture in the image (ELF machine ${elf.machine}, class ${elf.class})`, 'imgbuild supports aarch64, armhf, armel, x86_64, i386 and riscv64 images') };
  return { arch };
}

export function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const b = Buffer.alloc(n);
    const got = fs.readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

// ---- mounting inside the namespace ----

interface MountCtx {
  tx: Transaction;
  ns: Namespace;
  root: string;
  rootHost: string;
  journal: Journal;
  rw: boolean;
  /** Which partition of which image the root is: recover mounts it again to remove placeholders. */
  where: { image: FileId; imagePath: string; offset: number; sizelimit: number; fstype: string };
}

/**
 * Mount, and register its undo the moment the mount is made: an unmount of its own, or, with
 * `group`, a place in that group's one unmount.
 */
async function mountIn(tx: Transaction, ns: Namespace, label: string, args: string[], target: string, pidns = false, group?: MountGroup): Promise<void> {
  // Not cancellable: a mount that a signal interrupted may still have happened, and then its undo
  // must be registered. The signal is honoured right after.
  await ns.exec('mount', [...args, target], { pidns, signal: null });
  if (group) group.landed.push(target);
  else tx.defer(`unmount ${label}`, () => umountIn(ns, target));
  if (tx.ctx.signal.aborted) throw interruptedBy(tx.ctx.signal);
  const top = ns.mountinfo().at(-1);
  if (!ns.mountinfo().some((m) => m.target === target)) throw new Error(`mount of ${label} did not land at ${target} (last mount: ${top?.target})`);
}

export async function umountIn(ns: Namespace, target: string): Promise<void> {
  await umountAllIn(ns, [target]);
}

/** Resolve a mount point inside the image; it must be a real directory reached through no symlink. */
async function mountpoint(m: MountCtx, inner: string, step: FaultStep): Promise<string> {
  checkpoint(step);
  const r = resolveInRoot(m.rootHost, inner);
  if (r.inner !== inner) {
    throw new PreconditionError(`${inner} in the image is a symlink (to ${r.inner}); refusing to mount over it`, 'the image looks tampered with; imgbuild mounts only on real directories inside the image');
  }
  if (r.type === 'missing') await createInImage(m, inner, 'dir');
  else if (r.type !== 'dir') throw new PreconditionError(`${inner} in the image is not a directory`, 'the image looks damaged or tampered with');
  return path.join(m.root, inner);
}

/** Create a placeholder in the image; in rw sessions it is journaled and removed afterwards. */
async function createInImage(m: MountCtx, inner: string, type: 'file' | 'dir', mode?: number): Promise<void> {
  const host = path.join(m.rootHost, inner);
  const make = () => {
    if (type === 'dir') fs.mkdirSync(host, { mode: mode ?? 0o755 });
    else fs.closeSync(fs.openSync(host, fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_WRONLY | fs.constants.O_NOFOLLOW, mode ?? 0o644));
  };
  if (!m.rw || underTmpfs(inner)) {
    make();
    return;
  }
  const intent = { kind: 'created' as const, path: inner, type, ...m.where };
  await m.tx.change(`remove ${inner} created in the image`, intent, async () => {
    make();
    return { ...intent, id: fileId(host) };
  });
}

// Strictly below: /run, /tmp and /dev themselves are directories of the image (created, when
// missing, like any other mount point).
const underTmpfs = (inner: string) => /^\/(run|tmp|dev)\//.test(inner);

/**
 * Mounts undone as one: a single undo, registered before the first of them, unmounts the ones
 * that landed, newest first, in one umount run (a session makes a dozen such mounts and unmounts;
 * each run is a process). Register it only once every mount point exists: undos registered after
 * it (a directory created in the image) would run before it.
 */
class MountGroup {
  readonly landed: string[] = [];

  constructor(
    private readonly tx: Transaction,
    private readonly ns: Namespace,
    name: string,
  ) {
    tx.defer(name, () => umountAllIn(this.ns, [...this.landed].reverse()));
  }

  mount(label: string, args: string[], target: string, pidns = false): Promise<void> {
    return mountIn(this.tx, this.ns, label, args, target, pidns, this);
  }
}

/**
 * Unmount targets (newest first) in one umount run, then check each is gone. A busy one: if
 * something is still mounted below it, say so (killing processes would not help); else kill the
 * session's processes and try once more.
 */
async function umountAllIn(ns: Namespace, targets: string[]): Promise<void> {
  if (targets.length === 0) return;
  checkpoint('teardown:umount');
  const mounted = () => {
    const now = new Set(ns.mountinfo().map((m) => m.target));
    return targets.filter((t) => now.has(t));
  };
  let r = await ns.exec('umount', targets, { allowFailure: true, signal: null });
  let left = mounted();
  if (left.length > 0 && /busy/i.test(r.all)) {
    const mine = new Set(targets);
    const below = ns.mountinfo().filter((m) => !mine.has(m.target) && left.some((t) => m.target.startsWith(`${t}/`)));
    if (below.length > 0) throw new Error(`umount ${left.join(' ')}: still mounted below: ${below.map((m) => m.target).join(', ')}`);
    await ns.killAll();
    r = await ns.exec('umount', left, { allowFailure: true, signal: null });
    left = mounted();
  }
  // A lazy unmount would hide a busy mount while the image stays live: never count it as done.
  if (left.length > 0) throw new Error(`umount ${left.join(' ')}: ${r.all.trim()}`);
}

async function mountSystem(m: MountCtx, hostPts: boolean): Promise<void> {
  const { tx, ns } = m;
  // Every mount point first (a missing one is created, with its own undo), then the group.
  const proc = await mountpoint(m, '/proc', 'mount:proc');
  const sys = await mountpoint(m, '/sys', 'mount:sys');
  const dev = await mountpoint(m, '/dev', 'mount:dev');
  const run = await mountpoint(m, '/run', 'mount:run');
  const tmp = await mountpoint(m, '/tmp', 'mount:tmp');
  const group = new MountGroup(tx, ns, 'unmount /tmp /run /dev/shm /dev/pts /dev /sys /proc');
  await group.mount('/proc', ['-t', 'proc', '-o', 'nosuid,nodev,noexec', 'proc'], proc, true);
  await group.mount('/sys', ['-t', 'sysfs', '-o', 'ro,nosuid,nodev,noexec', 'sysfs'], sys);
  // A fresh tmpfs with a few device nodes, not the host's /dev: nothing in the chroot can reach
  // the host's disks, and no recursive delete can descend into the host's /dev.
  await group.mount('/dev', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,noexec,size=4m', 'imgbuild-dev'], dev);
  const nodes = ['/dev/null', '/dev/zero', '/dev/full', '/dev/random', '/dev/urandom', '/dev/tty', ...(hostPts ? ['/dev/ptmx'] : [])];
  await ns.exec('cp', ['-a', '--no-dereference', ...nodes, `${dev}/`], { signal: null });
  const devHost = ns.hostPath(dev);
  for (const d of ['pts', 'shm']) fs.mkdirSync(path.join(devHost, d));
  const links: [string, string][] = [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
  if (!hostPts) links.push(['ptmx', 'pts/ptmx']);
  for (const [name, target] of links) fs.symlinkSync(target, path.join(devHost, name));
  if (hostPts) await group.mount('/dev/pts', ['--bind', '-o', 'nosuid,noexec', '/dev/pts'], `${dev}/pts`);
  else await group.mount('/dev/pts', ['-t', 'devpts', '-o', 'newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec', 'devpts'], `${dev}/pts`);
  await group.mount('/dev/shm', ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'shm'], `${dev}/shm`);
  await group.mount('/run', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev', 'imgbuild-run'], run);
  fs.mkdirSync(path.join(ns.hostPath(path.join(m.root, 'run')), 'lock'), { mode: 0o1777 });
  await group.mount('/tmp', ['-t', 'tmpfs', '-o', 'mode=1777,nosuid,nodev', 'imgbuild-tmp'], tmp);
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

async function mountBoot(m: MountCtx, attachment: Attachment, image: ImageFile, filesystems: string[]): Promise<BootMount | undefined> {
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

/** The host's resolver configuration, skipping a systemd-resolved stub that means nothing in a chroot. */
export function hostResolvConf(): string {
  const main = safeRead('/etc/resolv.conf');
  const stubOnly = /nameserver\s+127\.0\.0\.53/.test(main) && !/nameserver\s+(?!127\.0\.0\.53)\S+/.test(main);
  if (stubOnly) {
    const upstream = safeRead('/run/systemd/resolve/resolv.conf');
    if (upstream.trim()) return upstream;
  }
  return main;
}

function safeRead(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

/**
 * Put `content` at `inner` for the session by binding a file over it, never by writing through
 * it: the image's own file (regular, symlink or missing) is as before afterwards, and kill -9
 * cannot leave host content in the image. Symlinks are resolved inside the image root.
 */
async function bindFileOver(m: MountCtx, inner: string, content: string, source: string, mode: number, step: FaultStep): Promise<void> {
  checkpoint(step);
  fs.writeFileSync(source, content, { mode });
  fs.chmodSync(source, mode);
  let r = resolveInRoot(m.rootHost, inner);
  if (r.type === 'missing') {
    const parent = resolveInRoot(m.rootHost, path.posix.dirname(r.inner));
    if (parent.type === 'missing' && underTmpfs(parent.inner)) fs.mkdirSync(parent.host, { recursive: true });
    else if (parent.type !== 'dir') {
      m.tx.emit({ kind: 'warn', message: `${inner} not provided: ${parent.inner} in the image is not a directory` });
      return;
    }
    await createInImage(m, r.inner, 'file');
    r = resolveInRoot(m.rootHost, inner);
  }
  if (r.type !== 'file') {
    m.tx.emit({ kind: 'warn', message: `${inner} not provided: it is not a regular file in the image (${r.type})` });
    return;
  }
  await mountIn(m.tx, m.ns, inner, ['--bind', '-o', 'ro', source], path.join(m.root, r.inner));
}
