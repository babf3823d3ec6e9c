// Loop devices: attached atomically (losetup --find --show), journaled with the backing file's
// identity, and recognised later by device name plus diskseq, which changes on every attach.
import fs from 'node:fs';
import path from 'node:path';
import type { FileId } from '../core/identity.js';
import type { HostChange } from '../undo/journal.js';
import type { Run } from '../core/runner.js';
import type { Transaction } from '../undo/transaction.js';
import { readMountinfo } from '../parse/mountinfo.js';
import { waitFor } from '../core/wait.js';

export interface LoopInfo {
  name: string;
  backIno: number;
  backDev: string;
  offset: number;
  sizelimit: number;
  autoclear: boolean;
  ro: boolean;
  backFile: string;
}

const columns = 'NAME,BACK-INO,BACK-MAJ:MIN,OFFSET,SIZELIMIT,AUTOCLEAR,RO,BACK-FILE';

/** Pure: `losetup --json --list --output NAME,BACK-INO,...` output. */
export function parseLosetupJson(text: string): LoopInfo[] {
  if (!text.trim()) return [];
  const data = JSON.parse(text) as { loopdevices?: Record<string, unknown>[] };
  return (data.loopdevices ?? []).map((d) => ({
    name: String(d.name),
    backIno: Number(d['back-ino']),
    backDev: String(d['back-maj:min'] ?? '').trim(),
    offset: Number(d.offset ?? 0),
    sizelimit: Number(d.sizelimit ?? 0),
    autoclear: d.autoclear === true || d.autoclear === '1' || d.autoclear === 1,
    ro: d.ro === true || d.ro === '1' || d.ro === 1,
    backFile: String(d['back-file'] ?? ''),
  }));
}

export async function listLoops(run: Run): Promise<LoopInfo[]> {
  const r = await run('losetup', ['--json', '--list', '--output', columns], { quiet: true, signal: null });
  return parseLosetupJson(r.stdout);
}

/** st_dev as losetup prints it (major:minor). */
export function devString(dev: number): string {
  // Linux's new_encode_dev layout, as Node returns st_dev.
  const major = (dev >> 8) & 0xfff;
  const minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
  return `${major}:${minor}`;
}

export function loopsOfImage(loops: LoopInfo[], image: FileId): LoopInfo[] {
  return loops.filter((l) => l.backIno === image.ino && l.backDev === devString(image.dev));
}

export function diskseq(device: string): string | undefined {
  try {
    return fs.readFileSync(`/sys/block/${path.basename(device)}/diskseq`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Is the loop still bound to something (size > 0 and a backing file)? */
export function loopBound(device: string): boolean {
  return fs.existsSync(`/sys/block/${path.basename(device)}/loop/backing_file`);
}

export interface AttachOptions {
  image: FileId;
  imagePath: string;
  offset?: number;
  sizelimit?: number;
  readOnly: boolean;
  partscan?: boolean;
}

export async function attachLoop(tx: Transaction, o: AttachOptions): Promise<{ device: string; diskseq: string }> {
  const intent: HostChange = { kind: 'loop', image: o.image, imagePath: o.imagePath, offset: o.offset ?? 0, sizelimit: o.sizelimit ?? 0 };
  const made = await tx.change(`detach loop of ${o.imagePath}`, intent, async () => {
    const args = ['--find', '--show'];
    if (o.readOnly) args.push('--read-only');
    if (o.partscan) args.push('--partscan');
    if (o.offset) args.push('--offset', String(o.offset));
    if (o.sizelimit) args.push('--sizelimit', String(o.sizelimit));
    args.push(o.imagePath);
    const r = await tx.ctx.run('losetup', args);
    const device = r.stdout.trim();
    const seq = diskseq(device) ?? '';
    return { ...intent, device, diskseq: seq };
  });
  if (made.kind !== 'loop' || !made.device) throw new Error('losetup did not name a device');
  return { device: made.device, diskseq: made.diskseq ?? '' };
}

/**
 * Undo of a loop change: detach the device only if it is still ours (same diskseq). A loop that
 * autoclear already released, or that someone else now uses, is left alone. With only an intent
 * (we may have died inside losetup) we look for an unused loop over the same image and range.
 */
export async function detachLoop(run: Run, change: Extract<HostChange, { kind: 'loop' }>, releaseMs = 0): Promise<void> {
  let device = change.device;
  if (!device) {
    const loops = loopsOfImage(await listLoops(run), change.image).filter(
      (l) => l.offset === change.offset && l.sizelimit === change.sizelimit && !l.autoclear,
    );
    if (loops.length !== 1) return;
    device = loops[0]!.name;
  } else if (diskseq(device) !== change.diskseq || !loopBound(device)) {
    return;
  }
  // Partition nodes added by partx are not removed with the loop: drop them first.
  await dropPartitions(run, device, releaseMs);
  await run('losetup', ['--detach', device], { allowFailure: true, signal: null });
  // A loop still open (mounted somewhere) is only flagged autoclear by losetup -d.
  if (!(await waitFor(() => !loopBound(device!) || diskseq(device!) !== change.diskseq, 3000))) {
    throw new Error(`${device} is still attached to ${change.imagePath} (in use?)`);
  }
}

export function partitionNodes(device: string): string[] {
  const base = path.basename(device);
  try {
    return fs.readdirSync(`/sys/block/${base}`).filter((n) => n.startsWith(`${base}p`));
  } catch {
    return [];
  }
}

/** Partition nodes of `device` that the kernel still claims: an exclusive open fails with EBUSY (a mounted filesystem). */
export function claimedPartitions(device: string): string[] {
  return partitionNodes(device).filter((n) => {
    try {
      fs.closeSync(fs.openSync(`/dev/${n}`, fs.constants.O_RDONLY | fs.constants.O_EXCL));
      return false;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === 'EBUSY';
    }
  });
}

/** Where a live process sees one of these partition nodes mounted ("loop0p2 at /x (process 12)"), one look per mount namespace. */
export function liveMountOf(nodes: string[]): string | undefined {
  const devs = new Map<string, string>();
  for (const n of nodes) {
    try {
      devs.set(fs.readFileSync(`/sys/class/block/${n}/dev`, 'utf8').trim(), n);
    } catch {
      // gone meanwhile
    }
  }
  const seen = new Set<string>();
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
      if (seen.has(ns)) continue;
      seen.add(ns);
      const hit = readMountinfo(Number(pid)).find((m) => devs.has(m.dev));
      if (hit) return `${devs.get(hit.dev)} at ${hit.target} (process ${pid}, ${processState(pid)})`;
    } catch {
      // the process ended
    }
  }
  return undefined;
}

function processState(pid: string): string {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const close = stat.lastIndexOf(')');
    return `${stat.slice(stat.indexOf('(') + 1, close)}, state ${stat.slice(close + 2, close + 3)}`;
  } catch {
    return 'gone';
  }
}

/**
 * Remove the partition nodes partx (or partscan) made on `device`. A partition still mounted by a
 * live process is refused at once, naming it. One claimed with no process seeing it is a dead
 * session's mount the kernel is still tearing down (after kill -9 the namespace's filesystems are
 * unmounted, and written back, after its last process is gone): `recover` waits `releaseMs` for
 * that. A live session's own teardown does not wait (a lazily unmounted filesystem a process of
 * the session still holds goes with the namespace, after which the step is retried).
 */
export async function dropPartitions(run: Run, device: string, releaseMs = 0): Promise<void> {
  const claimed = claimedPartitions(device);
  if (claimed.length > 0) {
    const live = liveMountOf(claimed);
    if (live) throw new Error(`partition nodes of ${device} remain: ${live} is mounted`);
    if (releaseMs > 0 && !(await waitFor(() => claimedPartitions(device).length === 0, releaseMs, { startMs: 10, maxMs: 250 }))) {
      const still = claimedPartitions(device);
      throw new Error(`partition nodes of ${device} remain: ${still.join(', ')} still in use after ${releaseMs / 1000} s (${liveMountOf(still) ?? 'no process sees it mounted: a dead session\'s filesystem is still being unmounted; run imgbuild recover again later'})`);
    }
  }
  // partx -d reports I/O errors on a released loop but still removes the nodes, and may race
  // with an autoclear release in progress: check the result, not the exit code, and retry.
  let busy = '';
  let refusals = 0;
  const gone = await waitFor(async () => {
    if (partitionNodes(device).length === 0) return true;
    const r = await run('partx', ['--delete', device], { allowFailure: true, signal: null, quiet: true });
    // Claimed again since we looked (a mount in some namespace): after a few tries, waiting longer
    // would not change that (the caller retries the whole step once the rest is undone).
    if (/error deleting partition|busy/i.test(r.all) && partitionNodes(device).length > 0 && ++refusals >= 4) busy = r.all.trim().split('\n')[0] ?? '';
    return partitionNodes(device).length === 0 || busy !== '';
  }, 3000, { startMs: 5, maxMs: 100 });
  if (!gone || busy) throw new Error(`partition nodes of ${device} remain: ${partitionNodes(device).join(', ')}${busy ? ` (${busy})` : ''}`);
}
