// The session's private world: a holder process, PID 1 of new mount and PID namespaces, keeps
// them alive while it reads its stdin from us. When imgbuild dies, even by kill -9, the pipe
// closes, the holder exits, the kernel kills every process in the PID namespace and tears the
// mount namespace down: no mount of a session ever reaches the host's namespace.
// The holder also holds the image's flock, released by the kernel however the session ends.
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from './context.js';
import { CommandError, PreconditionError } from './errors.js';
import { type FileId, fileId, sameFile } from './identity.js';
import { listJournals, sessionAlive } from './journal.js';
import { devString, waitFor } from './loop.js';
import { type MountEntry, readMountinfo } from './mountinfo.js';
import { type RunOptions, type RunResult, type Started, start } from './runner.js';
import { hostBinfmtDir } from './binfmt.js';

const lockConflict = 75;

export class Namespace {
  private binfmt: string | undefined;

  private constructor(
    private readonly ctx: Context,
    /** Host PID of the holder (PID 1 inside). */
    readonly pid: number,
    private readonly holder: Started,
    readonly mntns: string,
  ) {}

  /** Start a holder. With `lock`, take flock(LOCK_EX|LOCK_NB) on that file for the session's life. */
  static async open(ctx: Context, options: { lock?: string } = {}): Promise<Namespace> {
    const script = 'echo ready; read -r _; exit 0';
    const ns = ['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--', 'sh', '-c', script];
    const argv = options.lock ? ['flock', '--exclusive', '--nonblock', '--conflict-exit-code', String(lockConflict), '--no-fork', options.lock, ...ns] : ns;
    const holder = start(ctx.emit, argv[0]!, argv.slice(1));
    try {
      await holder.waitForLine((l) => l === 'ready');
    } catch (error) {
      const result = await holder.exited;
      if (options.lock && result.exitCode === lockConflict) throw inUseError(options.lock, ctx.stateDir);
      throw error;
    }
    const pid = childOf(holder.pid);
    if (!pid) throw new Error('namespace holder vanished');
    const mntns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
    const opened = new Namespace(ctx, pid, holder, mntns);
    await opened.dropForeignDeviceMounts();
    return opened;
  }

  /**
   * The new namespace starts with a copy of every host mount. Copies of mounts on loop and
   * device-mapper devices (another session's `imgbuild mount`, snap packages, other tools' images)
   * would keep those devices busy for as long as this session lives, and their owners could not
   * unmount or detach them: detach our copies (only in this namespace; the host keeps its mounts).
   */
  private async dropForeignDeviceMounts(): Promise<void> {
    const foreign = this.mountinfo()
      .filter((m) => /^\/dev\/(loop\d|mapper\/|dm-)/.test(m.source))
      .map((m) => m.target)
      .sort((a, b) => b.length - a.length);
    if (foreign.length === 0) return;
    await this.exec('umount', ['--lazy', '--', ...foreign], { allowFailure: true, signal: null });
  }

  /** The namespace's view of the file tree, for reading and writing files from this process. */
  hostPath(inner: string): string {
    return path.join(`/proc/${this.pid}/root`, inner);
  }

  /** argv that runs a command inside the namespaces (mount, and PID when `pidns`). */
  argv(file: string, args: readonly string[], pidns = false): string[] {
    return ['nsenter', `--target=${this.pid}`, '--mount', ...(pidns ? ['--pid'] : []), '--', file, ...args];
  }

  exec(file: string, args: readonly string[], options: RunOptions & { pidns?: boolean } = {}): Promise<RunResult> {
    const [f, ...a] = this.argv(file, args, options.pidns);
    return this.ctx.run(f!, a, options);
  }

  /** The namespace's mount table; empty once the namespace is gone. */
  mountinfo(): MountEntry[] {
    try {
      return readMountinfo(this.pid);
    } catch {
      return [];
    }
  }

  /** A binfmt_misc mount: the host's, or one mounted privately in this namespace. */
  async binfmtDir(): Promise<string> {
    if (this.binfmt) return this.binfmt;
    if (fs.existsSync(path.join(hostBinfmtDir, 'register'))) return (this.binfmt = hostBinfmtDir);
    const inner = '/proc/sys/fs/binfmt_misc';
    await this.exec('mount', ['-t', 'binfmt_misc', '-o', 'nosuid,nodev,noexec', 'binfmt_misc', inner], { signal: null });
    return (this.binfmt = this.hostPath(inner));
  }

  /** Processes other than the holder that live in this mount namespace. */
  processes(): number[] {
    const pids: number[] = [];
    for (const name of fs.readdirSync('/proc')) {
      // The holder and its parent (unshare, which entered the namespace before forking) stay.
      if (!/^\d+$/.test(name) || Number(name) === this.pid || Number(name) === this.holder.pid) continue;
      try {
        if (fs.readlinkSync(`/proc/${name}/ns/mnt`) === this.mntns) pids.push(Number(name));
      } catch {
        // exited
      }
    }
    return pids;
  }

  /** Kill every process in the session but the holder; wait until they are gone. */
  async killAll(): Promise<void> {
    const pids = this.processes();
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    if (!(await waitFor(() => this.processes().length === 0, 5000))) {
      throw new Error(`processes still running in the session: ${this.processes().join(', ')}`);
    }
  }

  /** Let the holder exit: the kernel then drops whatever is left in the namespace. */
  async close(): Promise<void> {
    this.holder.closeStdin();
    const r = await this.holder.exited;
    if (r.exitCode !== 0 && r.exitCode !== 143 && !r.signal) {
      throw new CommandError('namespace holder', r.exitCode, r.all);
    }
  }
}

function childOf(pid: number): number | undefined {
  try {
    const kids = fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    return kids.length > 0 ? Number(kids[0]) : undefined;
  } catch {
    return undefined;
  }
}

/** Who holds a flock on this file, from /proc/locks (matched by device and inode). */
export function lockHolder(file: string): { pid: number; command: string } | undefined {
  let id;
  try {
    id = fileId(file);
  } catch {
    return undefined;
  }
  const [maj, min] = devString(id.dev).split(':').map(Number);
  for (const line of fs.readFileSync('/proc/locks', 'utf8').split('\n')) {
    const f = line.trim().split(/\s+/);
    // "1: FLOCK  ADVISORY  WRITE 1234 fe:00:131074 0 EOF"
    if (f[1] !== 'FLOCK' || !f[5]) continue;
    const [a, b, ino] = f[5].split(':');
    if (parseInt(a!, 16) === maj && parseInt(b!, 16) === min && Number(ino) === id.ino) {
      const pid = Number(f[4]);
      let command = '';
      try {
        command = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
      } catch {
        // gone
      }
      return { pid, command };
    }
  }
  return undefined;
}

/** The error for an image another session holds, naming the imgbuild process that holds it. */
export function inUseError(image: string, stateDir: string): PreconditionError {
  const holder = lockHolder(image);
  let owner = holder ? `process ${holder.pid}: ${holder.command}` : 'unknown process';
  let id: FileId | undefined;
  try {
    id = fileId(image);
  } catch {
    // gone
  }
  const session = listJournals(stateDir).find((j) => sessionAlive(j) && sameFile(j.begin?.image, id));
  if (session?.begin) owner = `process ${session.begin.owner.pid}: imgbuild ${session.begin.verb}, session ${session.begin.session}`;
  return new PreconditionError(`${image} is in use by another imgbuild session (${owner})`, 'wait for it to finish, or stop it; one session per image at a time');
}

