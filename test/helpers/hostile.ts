// Helpers for hostile-image tests: editing an image's root offline, canary trees on the host
// whose every byte is compared before and after, a watch on the mounts of every mount
// namespace while imgbuild runs, and the host's binfmt_misc entries.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { isAtOrBelow, parseMountinfo } from '../../lib/parse/mountinfo.js';
import { safeRemoveTree } from '../../lib/host/safe-remove.js';
import { cliPath, tmpdir } from './cli.js';
import { foreignRoot } from './host.js';

/** imgbuild with a working directory (for relative image names). */
export function imgbuildIn(cwd: string, args: string[]) {
  return execa('node', [cliPath, ...args], { cwd, reject: false, all: true, timeout: 10 * 60_000 });
}

/**
 * Wait until a child prints a line matching `re` on stdout. Safer than looking for a chrooted
 * process by its command line: `unshare --root` is chrooted, with the command in its own command
 * line, for a moment before it execs the command.
 */
export function waitForOutput(child: { stdout: NodeJS.ReadableStream | null }, re: RegExp, ms = 60_000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = '';
    const timer = setTimeout(() => done(new Error(`no output matching ${re} within ${ms} ms: ${seen}`)), ms);
    const onData = (d: Buffer | string) => {
      seen += String(d);
      if (re.test(seen)) done();
    };
    const onEnd = () => done(new Error(`output ended without a line matching ${re}: ${seen}`));
    const done = (error?: Error) => {
      clearTimeout(timer);
      child.stdout?.off('data', onData);
      child.stdout?.off('end', onEnd);
      if (error) reject(error);
      else resolve();
    };
    child.stdout?.on('data', onData);
    child.stdout?.on('end', onEnd);
  });
}

/** A scratch directory under /var/tmp, removed only when nothing is mounted at or below it. */
export class Scratch {
  readonly dir: string;

  constructor(prefix = 'imgbuild-hostile-') {
    this.dir = fs.realpathSync(tmpdir(prefix));
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  remove(): void {
    safeRemoveTree(this.dir);
  }
}

/** The byte range of the image's root filesystem (the last Linux partition). */
export async function rootRange(image: string): Promise<{ offset: number; size: number }> {
  const table = JSON.parse((await execa('sfdisk', ['--json', image])).stdout).partitiontable;
  const linux = ['83', '0fc63daf-8483-4772-8e3d-3d69d8477de4'];
  const root = table.partitions.filter((p: { type: string }) => linux.includes(p.type.toLowerCase())).at(-1);
  if (!root) throw new Error(`no Linux partition in ${image}`);
  return { offset: root.start * 512, size: root.size * 512 };
}

async function detachAndWait(loop: string): Promise<void> {
  await execa('losetup', ['--detach', loop], { reject: false });
  const bound = () => fs.existsSync(`/sys/block/${path.basename(loop)}/loop/backing_file`);
  for (let i = 0; i < 100 && bound(); i++) await new Promise((r) => setTimeout(r, 50));
  if (bound()) throw new Error(`${loop} is still attached`);
}

/**
 * Run `script` (sh, cwd = the mounted root, so every path in it must be relative) on the image's
 * root filesystem, mounted through an offset loop in a private mount namespace: the mount dies
 * with the shell whatever happens, and the loop is detached in `finally`. Values go in through
 * `env`, never spliced into the script. Returns the script's stdout.
 */
export async function onRoot(image: string, script: string, o: { env?: Record<string, string>; readOnly?: boolean } = {}): Promise<string> {
  const { offset, size } = await rootRange(image);
  const ro = o.readOnly ? ['--read-only'] : [];
  const loop = (await execa('losetup', ['--find', '--show', ...ro, '--offset', String(offset), '--sizelimit', String(size), image])).stdout.trim();
  const mnt = fs.mkdtempSync('/var/tmp/imgbuild-edit-');
  try {
    const opts = o.readOnly ? 'ro,noload' : 'rw';
    const body = `set -eu\nmount -t ext4 -o ${opts} "$1" "$2"\ntrap 'cd /; umount "$2"' EXIT\ncd "$2"\n${script}\n`;
    const r = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', body, 'sh', loop, mnt], {
      env: o.env ?? {},
      reject: false,
      all: true,
    });
    if (r.exitCode !== 0) throw new Error(`script on the image root failed (exit ${r.exitCode}): ${r.all}`);
    return r.stdout;
  } finally {
    await detachAndWait(loop);
    fs.rmdirSync(mnt);
  }
}

/** Type, mode, owner, times and content hash of every entry in a tree, without following symlinks. */
export function fingerprint(root: string): string[] {
  const out: string[] = [];
  const visit = (rel: string) => {
    const p = path.join(root, rel);
    const st = fs.lstatSync(p);
    const head = `${rel || '.'} mode=${st.mode.toString(8)} uid=${st.uid} gid=${st.gid} size=${st.size} mtime=${st.mtimeMs} ctime=${st.ctimeMs} ino=${st.ino}`;
    if (st.isSymbolicLink()) out.push(`${head} -> ${fs.readlinkSync(p)}`);
    else if (st.isFile()) out.push(`${head} sha256=${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`);
    else out.push(head);
    if (st.isDirectory()) for (const name of fs.readdirSync(p).sort()) visit(path.join(rel, name));
  };
  visit('');
  return out;
}

/** A host directory with known content that a hostile image points at. */
export class Canary {
  readonly dir: string;

  constructor(files: Record<string, string>) {
    this.dir = fs.realpathSync(fs.mkdtempSync('/var/tmp/imgbuild-canary-'));
    for (const [name, content] of Object.entries(files)) {
      fs.mkdirSync(path.dirname(path.join(this.dir, name)), { recursive: true });
      fs.writeFileSync(path.join(this.dir, name), content);
    }
  }

  path(...parts: string[]): string {
    return path.join(this.dir, ...parts);
  }

  fingerprint(): string[] {
    return fingerprint(this.dir);
  }

  remove(): void {
    safeRemoveTree(this.dir);
  }
}

/** The same host path as a relative symlink target: enough `..` to climb out of any mount point. */
export function climbing(target: string): string {
  return `${'../'.repeat(16)}${target.replace(/^\/+/, '')}`;
}

/** One line per mount in every mount namespace (read through a process whose root is /). */
export function allMounts(): { ns: string; target: string; fstype: string; source: string }[] {
  const seen = new Set<string>();
  const out: { ns: string; target: string; fstype: string; source: string }[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const ns = fs.readlinkSync(`/proc/${pid}/ns/mnt`);
      if (seen.has(ns) || foreignRoot(pid)) continue;
      const entries = parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
      seen.add(ns);
      for (const e of entries) out.push({ ns, target: e.target, fstype: e.fstype, source: e.source });
    } catch {
      // gone, or a kernel thread
    }
  }
  return out;
}

/**
 * Run `fn` while polling the mount tables of all mount namespaces. Reports every mount that
 * appears at or below one of `watched` (the canary dirs), and every mount at a path no namespace
 * had before that is neither in imgbuild's session directories (where image roots live) nor the
 * private binfmt_misc mount: a mount that followed a symlink out of an image lands there.
 */
export async function watchMounts<T>(watched: string[], fn: () => Promise<T>, o: { sessions?: string; everyMs?: number } = {}): Promise<{ result: T; strays: string[] }> {
  const sessions = o.sessions ?? '/run/imgbuild/sessions';
  const known = new Set(allMounts().map((m) => m.target));
  const strays = new Set<string>();
  const scan = () => {
    for (const m of allMounts()) {
      const onCanary = watched.some((w) => isAtOrBelow(m.target, w));
      const unknown = !known.has(m.target) && !isAtOrBelow(m.target, sessions) && m.target !== '/proc/sys/fs/binfmt_misc';
      if (onCanary || unknown) strays.add(`${m.target} (${m.fstype} ${m.source}, ${m.ns})`);
    }
  };
  scan();
  const timer = setInterval(scan, o.everyMs ?? 10);
  try {
    const result = await fn();
    scan();
    return { result, strays: [...strays] };
  } finally {
    clearInterval(timer);
  }
}

/** lstat facts and content of a host file, for before/after comparison. */
export function fileState(p: string): string {
  const st = fs.lstatSync(p, { throwIfNoEntry: false });
  if (!st) return 'missing';
  const head = `mode=${st.mode.toString(8)} ino=${st.ino} mtime=${st.mtimeMs} ctime=${st.ctimeMs}`;
  if (st.isSymbolicLink()) return `${head} -> ${fs.readlinkSync(p)}`;
  return `${head} sha256=${crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex')}`;
}

// ---- binfmt_misc on the host ----

export const binfmtDir = '/proc/sys/fs/binfmt_misc';

/** Every entry's name and exact text, and the status file. */
export function binfmtState(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of fs.readdirSync(binfmtDir).sort()) {
    if (name === 'register') continue;
    out[name] = fs.readFileSync(path.join(binfmtDir, name), 'utf8');
  }
  return out;
}

export function registerBinfmt(line: string): void {
  fs.writeFileSync(path.join(binfmtDir, 'register'), line);
}

/** Remove an entry by name if it exists (writing -1 to it). */
export function unregisterBinfmt(name: string): void {
  const file = path.join(binfmtDir, name);
  if (fs.existsSync(file)) fs.writeFileSync(file, '-1');
}

/** Hex escapes for a binfmt_misc registration line. */
export function binfmtHex(bytes: Buffer | string): string {
  return [...Buffer.from(bytes)].map((b) => `\\x${b.toString(16).padStart(2, '0')}`).join('');
}

/**
 * Run `fn` with binfmt_misc mounted on the host (mounting it if it is not, and unmounting it
 * again afterwards), and with `entries` (name -> registration line) registered; every entry
 * registered here is removed again whatever happens.
 */
export async function withHostBinfmt<T>(entries: Record<string, string>, fn: () => Promise<T>): Promise<T> {
  const mounted = fs.existsSync(path.join(binfmtDir, 'register'));
  if (!mounted) await execa('mount', ['-t', 'binfmt_misc', 'binfmt_misc', binfmtDir]);
  const made: string[] = [];
  try {
    for (const [name, line] of Object.entries(entries)) {
      if (fs.existsSync(path.join(binfmtDir, name))) throw new Error(`binfmt entry ${name} already exists on this host`);
      registerBinfmt(line);
      made.push(name);
    }
    return await fn();
  } finally {
    for (const name of made.reverse()) unregisterBinfmt(name);
    if (!mounted) await execa('umount', [binfmtDir]);
  }
}
