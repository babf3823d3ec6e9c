// A memory limit for the build: a cgroup of our own (v2, or the v1 memory hierarchy) under the
// cgroup imgbuild runs in, so running out of memory kills the build, not the host, and the
// kernel's OOM counter tells us it happened. Made and removed as a journaled host change.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError, UsageError } from '../core/errors.js';
import { fileId, lfileId, sameFile } from '../core/identity.js';
import type { HostChange } from '../undo/journal.js';
import { waitFor } from '../core/wait.js';
import { isAtOrBelow, type MountEntry, readMountinfo } from '../parse/mountinfo.js';
import type { Transaction } from '../undo/transaction.js';

/** One line of /proc/PID/cgroup: "4:memory:/a/b" (v1) or "0::/a/b" (v2). */
export interface CgroupMembership {
  id: number;
  /** Controllers of a v1 hierarchy (and name=... options); empty for the v2 hierarchy. */
  controllers: string[];
  path: string;
}

/** Where children of our cgroup can get a memory limit, or why they cannot. */
export type MemoryCgroupProbe =
  | { ok: true; version: 1 | 2; /** Our own cgroup's directory: children are made here. */ parent: string }
  | { ok: false; reason: string; fix: string };

export interface CgroupFacts {
  membership: CgroupMembership[];
  mounts: MountEntry[];
  /** A file's text, or undefined when it cannot be read. */
  read(file: string): string | undefined;
}

type CgroupChange = Extract<HostChange, { kind: 'cgroup' }>;

/** Pure: the text of /proc/PID/cgroup. */
export function parseProcCgroup(text: string): CgroupMembership[] {
  const out: CgroupMembership[] = [];
  for (const line of text.split('\n')) {
    // The path may itself hold colons: split on the first two only.
    const m = /^(\d+):([^:]*):(.*)$/.exec(line.trim());
    if (!m) continue;
    out.push({ id: Number(m[1]), controllers: m[2] ? m[2].split(',') : [], path: m[3]! });
  }
  return out;
}

/** Pure: "key value" lines (memory.events, memory.oom_control, cgroup.events) to numbers. */
export function parseFlatKeyed(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [key, value] = line.trim().split(/\s+/);
    if (key && value !== undefined && /^\d+$/.test(value)) out.set(key, Number(value));
  }
  return out;
}

/** Pure: where a cgroup path shows under a mount of its hierarchy (the mount may show a subtree only). */
export function cgroupDir(mount: MountEntry, cgroupPath: string): string | undefined {
  if (!isAtOrBelow(cgroupPath, mount.root)) return undefined;
  return path.join(mount.target, path.relative(mount.root, cgroupPath));
}

/** Pure: v2 if the memory controller is delegated to our cgroup's children there, else v1's memory hierarchy. */
export function chooseMemoryCgroup(f: CgroupFacts): MemoryCgroupProbe {
  const v2 = probeV2(f);
  if (v2.ok) return v2;
  const v1 = probeV1(f);
  if (v1.ok) return v1;
  return { ok: false, reason: `${v2.reason}; ${v1.reason}`, fix: v2.fix };
}

function probeV2(f: CgroupFacts): MemoryCgroupProbe {
  const fix = 'limit imgbuild from outside instead: systemd-run --scope -p MemoryMax=8G -p MemorySwapMax=0 imgbuild ...';
  const self = f.membership.find((m) => m.id === 0 && m.controllers.length === 0);
  const mounts = f.mounts.filter((m) => m.fstype === 'cgroup2');
  if (!self || mounts.length === 0) return { ok: false, reason: 'no cgroup v2 hierarchy', fix };
  const dir = mounts.map((m) => cgroupDir(m, self.path)).find((d) => d !== undefined && f.read(path.join(d, 'cgroup.controllers')) !== undefined);
  if (!dir) return { ok: false, reason: `our cgroup v2 ${self.path} is not visible under ${mounts.map((m) => m.target).join(', ')}`, fix };
  const words = (file: string) => (f.read(path.join(dir, file)) ?? '').trim().split(/\s+/);
  if (!words('cgroup.controllers').includes('memory')) {
    return { ok: false, reason: `cgroup v2 at ${mounts[0]!.target} has no memory controller for our cgroup ${self.path}`, fix };
  }
  // Enabling it in cgroup.subtree_control is a change to a cgroup that is not ours (and the
  // kernel refuses it while our own process lives there): use it only when it is already on.
  if (!words('cgroup.subtree_control').includes('memory')) {
    return { ok: false, reason: `cgroup v2: the memory controller is not enabled for children of our cgroup ${self.path} (cgroup.subtree_control)`, fix };
  }
  return { ok: true, version: 2, parent: dir };
}

function probeV1(f: CgroupFacts): MemoryCgroupProbe {
  const fix = 'mount the cgroup v1 memory hierarchy, or run on a host with cgroup v2 memory delegation';
  const self = f.membership.find((m) => m.controllers.includes('memory'));
  const mounts = f.mounts.filter((m) => m.fstype === 'cgroup' && m.superOptions.split(',').includes('memory'));
  if (!self || mounts.length === 0) return { ok: false, reason: 'no cgroup v1 memory hierarchy', fix };
  const dir = mounts.map((m) => cgroupDir(m, self.path)).find((d) => d !== undefined && f.read(path.join(d, 'memory.limit_in_bytes')) !== undefined);
  if (!dir) return { ok: false, reason: `our cgroup v1 memory cgroup ${self.path} is not visible under ${mounts.map((m) => m.target).join(', ')}`, fix };
  return { ok: true, version: 1, parent: dir };
}

/** A file's text, or undefined when it cannot be read. */
export function readOrUndefined(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** How this host can put a memory limit on a build, from /proc/self/cgroup and the mounted hierarchies. */
export function probeMemoryCgroup(): MemoryCgroupProbe {
  const text = readOrUndefined('/proc/self/cgroup');
  if (text === undefined) return { ok: false, reason: 'no /proc/self/cgroup: the kernel has no cgroups', fix: 'a kernel with CONFIG_MEMCG' };
  return chooseMemoryCgroup({ membership: parseProcCgroup(text), mounts: readMountinfo('self'), read: readOrUndefined });
}

/**
 * Pure: an argv that moves itself into the cgroup (through its cgroup.procs) and then execs
 * `argv`. $$ is the shell's pid in its own PID namespace, which is also how the kernel reads a
 * pid written there, so it works on the host and under nsenter --pid alike.
 */
export function wrapArgv(procsFiles: string | readonly string[], argv: readonly string[]): string[] {
  if (argv.length === 0) throw new UsageError('nothing to run in the cgroup');
  const files = typeof procsFiles === 'string' ? [procsFiles] : procsFiles;
  return ['sh', '-c', `${files.map((_, i) => `echo $$ > "$${i + 1}"`).join(' && ')} && shift ${files.length} && exec "$@"`, 'sh', ...files, ...argv];
}

export class MemoryCgroup {
  constructor(
    readonly version: 1 | 2,
    /** The cgroup's directory on the host (also seen by session namespaces, which copy host mounts). */
    readonly dir: string,
    readonly limitBytes: number,
    /** Swap is limited too (memory.swap.max=0, or v1 memory+swap = the limit); false without swap accounting. */
    readonly swapLimited: boolean,
  ) {}

  get procsFile(): string {
    return path.join(this.dir, 'cgroup.procs');
  }

  /** argv that runs `argv` inside this cgroup. */
  wrap(argv: readonly string[]): string[] {
    return wrapArgv(this.procsFile, argv);
  }

  /** The kernel's OOM killer killed a process in this cgroup. Read it before the transaction unwinds. */
  oomKilled(): boolean {
    if (this.version === 2) return (parseFlatKeyed(readOrUndefined(path.join(this.dir, 'memory.events')) ?? '').get('oom_kill') ?? 0) > 0;
    // v1 counts a kill only in the victim's own cgroup, not its ancestors: add up the subtree.
    // (Kernels before 4.13 have no oom_kill line; they read as "not killed".)
    return cgroupTree(this.dir).some((d) => (parseFlatKeyed(readOrUndefined(path.join(d, 'memory.oom_control')) ?? '').get('oom_kill') ?? 0) > 0);
  }

  /** Highest memory use seen, in bytes, where the kernel keeps it (v1; v2 since Linux 5.19). */
  peakBytes(): number | undefined {
    const text = readOrUndefined(path.join(this.dir, this.version === 2 ? 'memory.peak' : 'memory.max_usage_in_bytes'));
    return text && /^\d+$/.test(text.trim()) ? Number(text.trim()) : undefined;
  }
}

/**
 * Make imgbuild-<session> under our own cgroup with a memory limit and no swap. The directory is
 * journaled before it is made; the transaction removes it (killing what is left in it).
 */
export async function createMemoryCgroup(tx: Transaction, o: { session: string; limitBytes: number; probe?: MemoryCgroupProbe }): Promise<MemoryCgroup> {
  if (!/^[\w.-]+$/.test(o.session)) throw new UsageError(`bad session id for a cgroup name: ${o.session}`);
  if (!Number.isSafeInteger(o.limitBytes) || o.limitBytes < 4 << 20) throw new UsageError(`memory limit ${o.limitBytes} bytes: give a whole number of at least 4 MiB`);
  const probe = o.probe ?? probeMemoryCgroup();
  if (!probe.ok) throw new PreconditionError(`no memory limit possible on this host: ${probe.reason}`, probe.fix);
  const dir = path.join(probe.parent, `imgbuild-${o.session}`);
  // Undoing a failed mkdir removes by name: make sure the name was free, so that is only ever ours.
  if (fs.existsSync(dir)) throw new PreconditionError(`memory cgroup ${dir} already exists`, 'a session id is used once: is another imgbuild using it?');
  await tx.change(`remove memory cgroup ${dir}`, { kind: 'cgroup', path: dir }, async () => {
    fs.mkdirSync(dir);
    return { kind: 'cgroup', path: dir, id: fileId(dir) };
  });
  const file = (name: string) => path.join(dir, name);
  const limit = String(o.limitBytes);
  let swapLimited: boolean;
  if (probe.version === 2) {
    fs.writeFileSync(file('memory.max'), limit);
    swapLimited = fs.existsSync(file('memory.swap.max'));
    if (swapLimited) fs.writeFileSync(file('memory.swap.max'), '0');
  } else {
    fs.writeFileSync(file('memory.limit_in_bytes'), limit);
    // A new v1 cgroup inherits oom_kill_disable: with it set, the build would hang at the limit instead of dying.
    fs.writeFileSync(file('memory.oom_control'), '0');
    swapLimited = fs.existsSync(file('memory.memsw.limit_in_bytes'));
    if (swapLimited) fs.writeFileSync(file('memory.memsw.limit_in_bytes'), limit);
    else fs.writeFileSync(file('memory.swappiness'), '0');
  }
  return new MemoryCgroup(probe.version, dir, o.limitBytes, swapLimited);
}

// A cgroup and its descendants, deepest first (the order to remove them).
function cgroupTree(dir: string): string[] {
  const out: string[] = [];
  try {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) out.push(...cgroupTree(path.join(dir, e.name)));
  } catch {
    return out;
  }
  out.push(dir);
  return out;
}

function cgroupProcs(dir: string): number[] {
  return (readOrUndefined(path.join(dir, 'cgroup.procs')) ?? '').split('\n').filter(Boolean).map(Number);
}

/**
 * Undo of a cgroup change: kill what still runs in it (and in any cgroup made below it), then
 * remove it, only if the directory is still the one we made. With only an intent, a directory of
 * that name is ours: the name holds our session id.
 */
export async function removeCgroup(change: CgroupChange, ms = 5000): Promise<void> {
  const id = lfileId(change.path);
  if (!id) return;
  if (change.id && !sameFile(id, change.id)) return; // not ours any more
  let last: unknown;
  const gone = await waitFor(() => {
    for (const dir of cgroupTree(change.path)) {
      // cgroup.kill (v2, Linux 5.14) also catches processes forking while we kill.
      try {
        if (fs.existsSync(path.join(dir, 'cgroup.kill'))) fs.writeFileSync(path.join(dir, 'cgroup.kill'), '1');
      } catch {
        // removed meanwhile; the kill loop below still runs
      }
      for (const pid of cgroupProcs(dir)) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          // exited
        }
      }
      try {
        fs.rmdirSync(dir); // EBUSY until the last process has left
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') last = error;
      }
    }
    return !fs.existsSync(change.path);
  }, ms);
  if (!gone) {
    const left = cgroupTree(change.path).flatMap(cgroupProcs);
    throw new Error(`cannot remove cgroup ${change.path}: ${left.length > 0 ? `processes ${left.join(', ')} still in it` : String(last)}`, { cause: last });
  }
}
