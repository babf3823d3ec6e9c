// The Session: an open image's chroot in a private namespace, and what can be done in it (run a
// command, limit memory, bind host paths in, register an undo); close() unwinds everything.
import type { Arch } from '../core/arch.js';
import type { AttachStrategy } from '../host/attach.js';
import { createMemoryCgroup, type MemoryCgroup, probeMemoryCgroup, wrapArgv } from '../host/cgroup.js';
import { createPidsLimit, type PidsLimit, probePidsCgroup } from '../host/pids.js';
import { checkpoint } from '../core/fault.js';
import type { ImageFile, ImagePartition } from '../host/image.js';
import type { Journal } from '../undo/journal.js';
import type { Namespace } from '../host/namespace.js';
import type { RunOptions, RunResult } from '../core/runner.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { OpenTransaction } from '../undo/open.js';
import { type BindGroup, mountBindGroup } from './bind-group.js';
import type { BootMount } from './boot.js';
import type { Interpreter } from './pythons.js';

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
  /** Commands keep every capability and may gain privileges (--privileged): the box is open. */
  privileged?: boolean;
  /** The image's Python to use instead of /usr/bin/python3 (--python PATH, a path inside the image). */
  python?: string;
}

export interface ExecOptions extends Omit<RunOptions, 'env' | 'cwd'> {
  env?: Record<string, string>;
  /** Working directory inside the chroot (default /workspace when bound, else /). */
  cwd?: string;
}

/** What an opened session is made of (openSession gathers it). */
export interface SessionParts {
  transaction: OpenTransaction<Journal>;
  ns: Namespace;
  image: ImageFile;
  strategy: AttachStrategy;
  rootPartition: ImagePartition;
  arch: Arch;
  /** The wheel platform tag's machine: the arch's, or armv6l for an ARMv6 armhf userland. */
  machine: string;
  /** The chroot root, as a path inside the namespace. */
  root: string;
  mode: SessionMode;
  boot: BootMount | undefined;
  workspace: string | undefined;
  /** The image's own root as mounted (the overlay's lower layer, or the root itself), inside the namespace. */
  imageRoot: string;
  /** The static program every command enters the image through (lib/host/enter.c). */
  enter: string;
  privileged: boolean;
  /** The interpreter --python chose (its environment's bin/ goes first on PATH). */
  python?: Interpreter;
}

export const chrootPath = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

export class Session {
  private closed = false;
  private readonly t: OpenTransaction<Journal>;
  /** Set by limitMemory(): every later exec runs inside it. */
  memory: MemoryCgroup | undefined;
  /** Set by limitPids(): every later exec runs under it. */
  pids: PidsLimit | undefined;
  readonly ns: Namespace;
  readonly image: ImageFile;
  readonly strategy: AttachStrategy;
  readonly rootPartition: ImagePartition;
  readonly arch: Arch;
  /** The wheel platform tag's machine: the arch's, or armv6l for an ARMv6 armhf userland. */
  readonly machine: string;
  /** The chroot root, as a path inside the namespace. */
  readonly root: string;
  readonly mode: SessionMode;
  readonly boot: BootMount | undefined;
  readonly workspace: string | undefined;
  /** The image's own root as mounted (the overlay's lower layer, or the root itself), inside the namespace. */
  readonly imageRoot: string;
  private readonly enter: string;
  readonly privileged: boolean;
  readonly python: Interpreter | undefined;

  constructor(parts: SessionParts) {
    this.t = parts.transaction;
    this.ns = parts.ns;
    this.image = parts.image;
    this.strategy = parts.strategy;
    this.rootPartition = parts.rootPartition;
    this.arch = parts.arch;
    this.machine = parts.machine;
    this.root = parts.root;
    this.mode = parts.mode;
    this.boot = parts.boot;
    this.workspace = parts.workspace;
    this.imageRoot = parts.imageRoot;
    this.enter = parts.enter;
    this.privileged = parts.privileged;
    this.python = parts.python;
  }

  get id(): string {
    return this.t.journal.id;
  }

  /** The chroot root as a host path (through the namespace), for reading and writing its files. */
  get rootHost(): string {
    return this.ns.hostPath(this.root);
  }

  /** Host path (through the namespace) of a file in the image, resolved inside the image root. */
  file(inner: string): string {
    return resolveInRoot(this.rootHost, inner).host;
  }

  /**
   * Run a command in the image, boxed (lib/host/enter.c): pivot_root into the image root with the
   * host's root detached, new mount, PID, UTS and IPC namespaces (daemons it leaves die with it;
   * its /proc is its own, /proc/sys read-only), and unless --privileged a reduced capability
   * bounding set and no_new_privs.
   */
  exec(argv: readonly string[], options: ExecOptions = {}): Promise<RunResult> {
    checkpoint('chroot');
    const cwd = options.cwd ?? (this.workspace ? '/workspace' : '/');
    const chosen = withPython(this.python, argv);
    const env: Record<string, string> = {
      PATH: chrootPath,
      HOME: '/root',
      LANG: 'C.UTF-8',
      TERM: process.env.TERM ?? 'dumb',
      // An ARMv6 userland's Python names its platform linux-armv6l, as on the board (qemu's CPU says armv7l).
      ...(this.machine === 'armv6l' && this.arch === 'armhf' ? { _PYTHON_HOST_PLATFORM: 'linux-armv6l' } : {}),
      ...chosen.env,
      ...options.env,
    };
    const { cwd: _c, env: _e, ...rest } = options;
    const inner = [this.enter, ...(this.privileged ? ['--privileged'] : []), this.root, cwd, '--', ...chosen.argv];
    const procs = [...(this.memory ? [this.memory.procsFile] : []), ...(this.pids?.ownCgroup ? [this.pids.procsFile] : [])];
    const [cmd, ...args] = procs.length ? wrapArgv(procs, inner) : inner;
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

  /**
   * Run every later command under a limit of `max` processes at once (a pids cgroup, journaled,
   * removed at close): a fork bomb stops at the limit instead of filling the host. Call it after
   * limitMemory (in cgroup v2 both share one cgroup). Returns why not when the host cannot.
   */
  async limitPids(max: number): Promise<{ ok: true; limit: PidsLimit } | { ok: false; reason: string }> {
    const probe = probePidsCgroup();
    if (!probe.ok) return { ok: false, reason: probe.reason };
    this.pids = await createPidsLimit(this.t.tx, { session: this.id, max, probe, ...(this.memory ? { memory: this.memory } : {}) });
    return { ok: true, limit: this.pids };
  }

  /**
   * Bind host paths (as the namespace sees them) into the chroot, all in one mount process:
   * read-only and nosuid,nodev (a writable one nosuid,nodev,noexec). The undo, registered under
   * `group.undo` before the batch, stops the session's processes and unmounts the group (and what
   * recursive binds brought along) newest first in one umount run. Returns that undo, to take the
   * binds off early; it does its work once. Throws when a bind fails, does not land, or is not read-only.
   */
  bindGroup(group: BindGroup): Promise<() => Promise<void>> {
    return mountBindGroup(this.t.tx, this.ns, this.root, group);
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

// The Debian tools that run as the system's, whatever Python was chosen (their maintainer scripts
// call python3 from PATH and mean /usr/bin/python3).
const systemTools = new Set(['apt-get', 'apt', 'dpkg', 'dpkg-query', 'dpkg-divert', 'py3compile']);

/** Pure: a command with --python's interpreter for `python3`, and its environment's bin/ first on PATH (as activating it would). */
export function withPython(python: Interpreter | undefined, argv: readonly string[]): { argv: readonly string[]; env: Record<string, string> } {
  if (!python || python.path === '/usr/bin/python3' || systemTools.has(argv[0] ?? '')) return { argv, env: {} };
  const out = argv[0] === 'python3' ? [python.path, ...argv.slice(1)] : argv;
  if (!python.prefix) return { argv: out, env: {} };
  return { argv: out, env: { PATH: `${python.prefix}/bin:${chrootPath}`, ...(python.kind === 'venv' ? { VIRTUAL_ENV: python.prefix } : { CONDA_PREFIX: python.prefix }) } };
}
