// Mounting inside the session's namespace: one mount with its undo, groups undone in one umount
// run, mount points and placeholders made in the image, and the chroot's /proc /sys /dev /run /tmp.
import fs from 'node:fs';
import path from 'node:path';
import { interruptedBy, PreconditionError } from '../core/errors.js';
import { checkpoint, type FaultStep } from '../core/fault.js';
import { type FileId, fileId } from '../core/identity.js';
import type { Journal } from '../undo/journal.js';
import type { Namespace } from '../host/namespace.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { Transaction } from '../undo/transaction.js';

/** What mounting into the chroot needs: the transaction, the namespace and where the root is. */
export interface MountCtx {
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
export async function mountIn(tx: Transaction, ns: Namespace, label: string, args: string[], target: string, pidns = false, group?: MountGroup): Promise<void> {
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
export async function mountpoint(m: MountCtx, inner: string, step: FaultStep): Promise<string> {
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
export async function createInImage(m: MountCtx, inner: string, type: 'file' | 'dir', mode?: number): Promise<void> {
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
export const underTmpfs = (inner: string) => /^\/(run|tmp|dev)\//.test(inner);

/**
 * Mounts undone as one: a single undo, registered before the first of them, unmounts the ones
 * that landed, newest first, in one umount run (a session makes a dozen such mounts and unmounts;
 * each run is a process). Register it only once every mount point exists: undos registered after
 * it (a directory created in the image) would run before it.
 */
export class MountGroup {
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

  /**
   * Bind mounts (source, target) in one shell run through the holder, in order, stopping at the
   * first that fails; each that landed joins the group. Throws when one did not land.
   */
  async bindAll(pairs: readonly (readonly [string, string])[]): Promise<void> {
    const script = 'while [ $# -gt 0 ]; do mount --bind -- "$1" "$2" || exit 1; shift 2; done';
    const r = await this.ns.exec('sh', ['-c', script, 'sh', ...pairs.flat()], { signal: null, allowFailure: true });
    const now = new Set(this.ns.mountinfo().map((m) => m.target));
    for (const [, target] of pairs) if (now.has(target)) this.landed.push(target);
    if (this.tx.ctx.signal.aborted) throw interruptedBy(this.tx.ctx.signal);
    const missing = pairs.filter(([, target]) => !now.has(target));
    if (missing.length > 0) throw new Error(`bind of ${missing.map(([, t]) => t).join(', ')} did not land: ${r.all.trim()}`);
  }
}

/**
 * Unmount targets (newest first) in one umount run, then check each is gone. A busy one: if
 * something is still mounted below it, say so (killing processes would not help); else kill the
 * session's processes and try once more.
 */
export async function umountAllIn(ns: Namespace, targets: string[]): Promise<void> {
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

/** /proc, /sys, a private /dev (with pts and shm), /run and /tmp in the chroot, undone as one group. */
export async function mountSystem(m: MountCtx, hostPts: boolean): Promise<void> {
  const { tx, ns } = m;
  // Every mount point first (a missing one is created, with its own undo), then the group.
  const proc = await mountpoint(m, '/proc', 'mount:proc');
  const sys = await mountpoint(m, '/sys', 'mount:sys');
  const dev = await mountpoint(m, '/dev', 'mount:dev');
  const run = await mountpoint(m, '/run', 'mount:run');
  const tmp = await mountpoint(m, '/tmp', 'mount:tmp');
  const group = new MountGroup(tx, ns, 'unmount /tmp /run /dev/shm /dev/pts /dev/* /dev /sys /proc');
  await group.mount('/proc', ['-t', 'proc', '-o', 'nosuid,nodev,noexec', 'proc'], proc, true);
  await group.mount('/sys', ['-t', 'sysfs', '-o', 'ro,nosuid,nodev,noexec', 'sysfs'], sys);
  // A fresh nodev tmpfs with a few of the host's device nodes bound in, not the host's /dev:
  // nothing in the chroot can reach the host's disks (a node made there does not open), and no
  // recursive delete can descend into the host's /dev.
  await group.mount('/dev', ['-t', 'tmpfs', '-o', 'mode=0755,nosuid,nodev,noexec,size=4m', 'imgbuild-dev'], dev);
  const nodes = ['null', 'zero', 'full', 'random', 'urandom', 'tty', ...(hostPts ? ['ptmx'] : [])];
  const devHost = ns.hostPath(dev);
  for (const d of ['pts', 'shm']) fs.mkdirSync(path.join(devHost, d));
  for (const n of nodes) fs.writeFileSync(path.join(devHost, n), '', { mode: 0o666, flag: 'wx' });
  await group.bindAll(nodes.map((n) => [`/dev/${n}`, `${dev}/${n}`] as const));
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
