// The session's private world: a holder process, PID 1 of new mount and PID namespaces, keeps
// them alive while it reads its stdin from us. When imgbuild dies, even by kill -9, the pipe
// closes, the holder exits, the kernel kills every process in the PID namespace and tears the
// mount namespace down: no mount of a session ever reaches the host's namespace.
// The holder also holds the image's flock, released by the kernel however the session ends.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { CommandError, PreconditionError } from '../core/errors.js';
import { type FileId, fileId, type ProcessId, processStart, sameFile } from '../core/identity.js';
import { type Journal, listJournals, sessionAlive } from '../undo/journal.js';
import { waitFor } from '../core/wait.js';
import { devString } from './loop.js';
import { type MountEntry, readMountinfo } from '../parse/mountinfo.js';
import { shellJoin } from '../core/quote.js';
import { type RunOptions, type RunResult, type Started, start } from '../core/runner.js';
import { hostBinfmtDir } from './binfmt.js';

const lockConflict = 75;

// The holder's script: PID 1 of the namespaces and a small command server. It runs each line we
// send (an argv, shell-quoted) with stdin from /dev/null, then prints the output and a line
// "NONCE EXIT-CODE". A mount or umount through it costs a fork and an exec, against a Node
// spawn plus nsenter; a session makes a few dozen. End of input (our close, or our death) ends
// it, and with it the namespaces.
const holderScript = 'echo ready; while IFS= read -r c; do o=$(eval "$c" 2>&1 </dev/null); r=$?; [ -z "$o" ] || printf "%s\\n" "$o"; echo "$1 $r"; done; exit 0';

interface Pending {
  output: string[];
  resolve: (r: { exitCode: number; all: string }) => void;
}

export class Namespace {
  private binfmt: string | undefined;
  private pending: Pending | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private gone = false;

  private constructor(
    private readonly ctx: Context,
    /** Host PID of the holder (PID 1 inside). */
    readonly pid: number,
    private readonly holder: Started,
    readonly mntns: string,
    private readonly nonce: string,
  ) {
    holder.onLine((line) => {
      const p = this.pending;
      if (!p) return;
      const m = line.startsWith(`${nonce} `) ? /^\S+ (\d+)$/.exec(line) : null;
      if (!m) {
        p.output.push(line);
        return;
      }
      this.pending = undefined;
      p.resolve({ exitCode: Number(m[1]), all: p.output.join('\n') });
    });
    void holder.exited.then((r) => {
      this.gone = true;
      const p = this.pending;
      this.pending = undefined;
      // As a command that failed: with allowFailure the caller checks the mount table (empty now).
      p?.resolve({ exitCode: 1, all: `the session's namespace holder exited (${r.signal ?? `exit ${r.exitCode}`}) ${r.all}`.trim() });
    });
  }

  /**
   * Start a holder. With `lock`, take flock(LOCK_EX|LOCK_NB) on that file for the session's life.
   * With `journal`, the holder is recorded there, so `recover` waits for it to end after a kill -9.
   */
  static async open(ctx: Context, options: { lock?: string; journal?: Journal } = {}): Promise<Namespace> {
    const nonce = `imgbuild-${crypto.randomBytes(8).toString('hex')}`;
    const ns = ['unshare', '--mount', '--propagation', 'private', '--pid', '--fork', '--kill-child', '--', 'sh', '-c', holderScript, 'sh', nonce];
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
    const opened = new Namespace(ctx, pid, holder, mntns, nonce);
    options.journal?.holder(opened.holderProcess);
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

  /** The holder process as the host sees it (unshare, the parent of PID 1 inside), for the journal. */
  get holderProcess(): ProcessId {
    return { pid: this.holder.pid, start: processStart(this.holder.pid) ?? '' };
  }

  /** The holder has exited (killed from outside, or closed): the session's namespaces are gone. */
  get exited(): boolean {
    return this.gone;
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
    if (servable(file, args, options)) return this.served(file, args, options);
    const [f, ...a] = this.argv(file, args, options.pidns);
    return this.ctx.run(f!, a, options);
  }

  /**
   * Run a short, uncancellable command (a mount, an umount) through the holder: in both
   * namespaces, with this process's environment and working directory, output merged. One at a
   * time, in the order asked.
   */
  private served(file: string, args: readonly string[], options: RunOptions): Promise<RunResult> {
    const argv = [file, ...args];
    const run = () =>
      new Promise<{ exitCode: number; all: string }>((resolve) => {
        if (this.gone) {
          resolve({ exitCode: 1, all: 'the session\'s namespace holder has exited: its namespaces and mounts are gone' });
          return;
        }
        if (!options.quiet) this.ctx.emit({ kind: 'cmd', argv });
        this.pending = { output: [], resolve };
        this.holder.write(`${shellJoin(argv)}\n`);
      });
    const result = this.queue.then(run, run).then(({ exitCode, all }): RunResult => {
      if (exitCode !== 0 && !options.allowFailure) throw new CommandError(shellJoin(argv), exitCode === 127 ? undefined : exitCode, exitCode === 127 ? `${file}: command not found\n${all}` : all);
      return { exitCode, stdout: all, stderr: '', all };
    });
    this.queue = result.catch(() => undefined);
    return result;
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

// What the holder can run: uncancellable (signal: null, as every mount and umount is), no input,
// environment, working directory, log or terminal of its own, and one line of argv.
function servable(file: string, args: readonly string[], o: RunOptions): boolean {
  if (o.signal !== null || o.input !== undefined || o.stdio === 'inherit' || o.logFile || o.onLine || o.env || o.extendEnv === false || o.cwd || o.group) return false;
  return ![file, ...args].some((a) => /[\n\r\0]/.test(a));
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

