// The wheel cache: a build whose every input is the same as an earlier one's gets that build's
// wheels back at once. Entries are content-addressed (CACHE/wheels/<key[0:2]>/<key>/), written
// once by an atomic rename, never changed, and verified against their sha256 on every lookup.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashFile } from '../core/hash.js';
import type { ManifestWheel } from './manifest.js';
import { safeRemoveTree } from '../host/safe-remove.js';
import { verificationLevel } from './verify.js';
import { type FetchedSource, skippedTopLevel, type TargetSource } from '../targets/types.js';
import { isWheelFrontend, wheelFrontendSource } from '../targets/local.js';

/** Part of every key: bump it when the key's inputs or the entry layout change. */
export const wheelCacheFormat = 1;

/** The jobs count a plan is made with for its key, so --jobs (MAX_JOBS, --parallel N) does not change it. */
export const keyJobs = 1;

const entryName = 'entry.json';

export function wheelsDir(cacheDir: string): string {
  return path.join(cacheDir, 'wheels');
}

/** Where the entry of `key` lives (whether or not it exists). */
export function wheelEntryDir(cacheDir: string, key: string): string {
  checkKey(key);
  return path.join(wheelsDir(cacheDir), key.slice(0, 2), key);
}

// ---------------------------------------------------------------------------------------------
// Image identity

interface Stamp {
  dev: string;
  ino: string;
  size: string;
  mtimeNs: string;
  ctimeNs: string;
}

interface ImageMemo extends Stamp {
  sha256: string;
}

/** A file changed within this long before its hash began may change again without a new ctime (coarse clock ticks). */
const racyNs = 1_000_000_000n;

function stampOf(st: fs.BigIntStats): Stamp {
  return { dev: String(st.dev), ino: String(st.ino), size: String(st.size), mtimeNs: String(st.mtimeNs), ctimeNs: String(st.ctimeNs) };
}

function sameStamp(a: Stamp, b: Stamp): boolean {
  return a.dev === b.dev && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs;
}

/**
 * The sha256 of an image, hashed again only when the file may have changed: the result is kept
 * in the cache under the file's device, inode, size, mtime and ctime. Every write, truncate,
 * chmod or utime changes the ctime, which no one can set back. A block device (size 0, no ctime
 * on write) is hashed every time.
 */
export async function imageIdentity(imagePath: string, cacheDir: string): Promise<string> {
  const before = fs.statSync(imagePath, { bigint: true });
  if (!before.isFile()) return hashFile(imagePath);
  const stamp = stampOf(before);
  const memoFile = path.join(wheelsDir(cacheDir), 'images', `${stamp.dev}-${stamp.ino}.json`);
  const memo = readMemo(memoFile);
  if (memo && sameStamp(memo, stamp)) return memo.sha256;

  const started = BigInt(Date.now()) * 1_000_000n;
  const sha256 = await hashFile(imagePath);
  const after = stampOf(fs.statSync(imagePath, { bigint: true }));
  // Like git's "racy" index entries: a write in the same clock tick as the last one keeps the ctime.
  if (sameStamp(after, stamp) && BigInt(stamp.ctimeNs) < started - racyNs) {
    try {
      writeAtomic(memoFile, `${JSON.stringify({ ...stamp, sha256 } satisfies ImageMemo)}\n`);
    } catch {
      // the memo only saves time; an unwritable cache hashes again next time
    }
  }
  return sha256;
}

function readMemo(file: string): ImageMemo | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Partial<ImageMemo>;
    const fields = [m.dev, m.ino, m.size, m.mtimeNs, m.ctimeNs];
    if (fields.every((f) => typeof f === 'string') && typeof m.sha256 === 'string' && /^[0-9a-f]{64}$/.test(m.sha256)) return m as ImageMemo;
  } catch {
    // missing or corrupt: hash again
  }
  return undefined;
}

function writeAtomic(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  const tmp = `${file}.tmp-${process.pid}-${crypto.randomBytes(4).toString('hex')}`;
  try {
    fs.writeFileSync(tmp, text, { mode: 0o644 });
    fs.renameSync(tmp, file);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}

// ---------------------------------------------------------------------------------------------
// Source fingerprint

/**
 * What identifies a target's source, as built:
 * - a directory: `tree:<sha256>` over the relative path, type, mode and contents (a symlink: its
 *   target string) of every entry fetchSource copies (all but top-level build/ and dist/; .git and
 *   dot files are copied, so they count). Modification times and owners do not count.
 * - a file (sdist): `file:<sha256>` over its name (the commands name it) and its contents.
 * - git: `git:<commit>`, with `+submodules` when they are checked out; needs the FetchedSource.
 */
export async function sourceFingerprint(source: TargetSource, fetched?: FetchedSource): Promise<string> {
  if (source.kind === 'git') {
    if (!fetched?.commit) throw new Error(`the fingerprint of ${source.url}@${source.ref} needs the fetched commit`);
    return `git:${fetched.commit}${source.submodules ? '+submodules' : ''}`;
  }
  const st = fs.statSync(source.path);
  if (st.isDirectory()) return `tree:${await hashTree(source.path, skippedTopLevel)}`;
  const h = crypto.createHash('sha256');
  h.update(`${Buffer.byteLength(path.basename(source.path))}:${path.basename(source.path)} ${await hashFile(source.path)}`);
  return `file:${h.digest('hex')}`;
}

interface TreeItem {
  rel: Buffer;
  abs: Buffer;
  st: fs.Stats;
}

const slash = Buffer.from('/');

/** Names are Buffers throughout: a file name that is not UTF-8 must still be found and counted. */
function walkTree(root: Buffer, rel: Buffer, skip: readonly string[], out: TreeItem[]): void {
  const dir = rel.length ? Buffer.concat([root, slash, rel]) : root;
  for (const name of fs.readdirSync(dir, { encoding: 'buffer' })) {
    if (skip.some((s) => name.equals(Buffer.from(s)))) continue;
    const r = rel.length ? Buffer.concat([rel, slash, name]) : name;
    const abs = Buffer.concat([root, slash, r]);
    const st = fs.lstatSync(abs);
    out.push({ rel: r, abs, st });
    if (st.isDirectory()) walkTree(root, r, [], out);
  }
}

// Small files are read synchronously (several times faster than through the thread pool),
// yielding to the event loop now and then; big ones are streamed, a few at a time.
const smallFile = 64 << 10;

/** One sha256 over a tree's entries in byte order of their paths. */
export async function hashTree(root: string, skipTop: readonly string[] = []): Promise<string> {
  const items: TreeItem[] = [];
  walkTree(Buffer.from(root), Buffer.alloc(0), skipTop, items);
  items.sort((a, b) => Buffer.compare(a.rel, b.rel));
  const digests: string[] = new Array(items.length).fill('');
  let next = 0;
  let sinceYield = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      const it = items[i]!;
      if (!it.st.isFile()) continue;
      if (it.st.size > smallFile) digests[i] = await hashFile(it.abs);
      else {
        digests[i] = crypto.createHash('sha256').update(fs.readFileSync(it.abs)).digest('hex');
        if (++sinceYield % 256 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      }
    }
  };
  await Promise.all(Array.from({ length: 4 }, worker));

  const h = crypto.createHash('sha256');
  for (const [i, it] of items.entries()) {
    const { st } = it;
    const type = st.isFile() ? 'f' : st.isDirectory() ? 'd' : st.isSymbolicLink() ? 'l' : st.isFIFO() ? 'p' : st.isSocket() ? 's' : st.isBlockDevice() ? 'b' : 'c';
    h.update(`${type} ${(st.mode & 0o7777).toString(8)} ${it.rel.length}:`);
    h.update(it.rel);
    if (type === 'f') h.update(` ${digests[i]}`);
    else if (type === 'l') {
      const target = fs.readlinkSync(it.abs, { encoding: 'buffer' });
      h.update(` ${target.length}:`);
      h.update(target);
    } else if (type === 'b' || type === 'c') h.update(` ${st.rdev}`);
    h.update('\n');
  }
  return h.digest('hex');
}

// ---------------------------------------------------------------------------------------------
// The key

/**
 * Everything a wheel build depends on that imgbuild can name before building. Deliberately NOT
 * part of the key: --jobs (plan env and commands with jobs = keyJobs), --accel (the compiler
 * identity stands for the compiler actually used), --out, --workspace, --attach, --persist, the
 * image's path (its content counts), file times and owners in the source. Not captured either:
 * what apt and pip would fetch for unpinned packages today versus when the entry was made.
 */
export interface WheelKeyParts {
  /** sha256 of the image (imageIdentity). */
  image: string;
  arch: string;
  /** The image's python, "3.11". */
  python: string;
  /** TargetPlan.id and .version. */
  target: string;
  targetVersion?: string;
  /** TargetPlan.env and .commands, from a plan made with jobs = keyJobs. */
  env: Record<string, string>;
  commands: string[][];
  pip: string[];
  /** apt packages installed in the build layer before the build (order does not count). */
  apt: string[];
  /** sha256 (or cache key) of each wheel installed before this build: the needs' wheels, --with-wheel wheels (order does not count). */
  needs: string[];
  /** sourceFingerprint(). */
  source: string;
  /**
   * The compiler: version and target defaults (e.g. `gcc -v` with its "Configured with" line).
   * Equal strings must mean equal objects: a host cross compiler shares a key with the chroot's
   * native one only when both say the same.
   */
  compiler: string;
}

let frontendHash: string | undefined;

/** sha256 of lib/build-wheel.py: the commands name the front end, this stands for what it does. */
function wheelFrontendHash(): string {
  frontendHash ??= crypto.createHash('sha256').update(fs.readFileSync(wheelFrontendSource)).digest('hex');
  return frontendHash;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) over the canonical JSON of the parts and the cache format. */
export function wheelCacheKey(parts: WheelKeyParts): string {
  if (!/^[0-9a-f]{64}$/.test(parts.image)) throw new Error(`wheel cache key: image ${parts.image} is not a sha256`);
  // Picked field by field: a caller passing a wider object (a plan, the request) adds nothing.
  const keyed = {
    format: wheelCacheFormat,
    image: parts.image,
    arch: parts.arch,
    python: parts.python,
    target: parts.target,
    targetVersion: parts.targetVersion ?? null,
    env: parts.env,
    commands: parts.commands,
    frontend: parts.commands.some(isWheelFrontend) ? wheelFrontendHash() : null,
    pip: parts.pip,
    apt: [...parts.apt].sort(),
    needs: [...parts.needs].sort(),
    source: parts.source,
    compiler: parts.compiler,
    verification: verificationLevel,
  };
  return crypto.createHash('sha256').update(canonicalJson(keyed)).digest('hex');
}

function checkKey(key: string): void {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`not a wheel cache key: ${key}`);
}

// ---------------------------------------------------------------------------------------------
// Entries

interface StoredEntry {
  format: number;
  key: string;
  wheels: ManifestWheel[];
}

export type WheelLookup =
  /** Every file verified; `files[i]` (in the cache: copy it out, do not move it) belongs to `entries[i]`. */
  | { kind: 'hit'; dir: string; files: string[]; entries: ManifestWheel[] }
  | { kind: 'miss' }
  /** There was an entry, it failed verification and was removed; `reason` says why. */
  | { kind: 'damaged'; reason: string };

/** The verified entry of `key`, or why there is none. */
export async function lookupWheels(cacheDir: string, key: string): Promise<WheelLookup> {
  const dir = wheelEntryDir(cacheDir, key);
  if (!fs.existsSync(dir)) return { kind: 'miss' };
  const checked = await checkEntry(dir, key);
  if (typeof checked !== 'string') return { kind: 'hit', dir, files: checked.wheels.map((w) => path.join(dir, w.file)), entries: checked.wheels };
  discard(dir);
  return { kind: 'damaged', reason: `cached entry ${dir} ${checked}; removed it` };
}

/** The stored entry when every wheel is there with its size and sha256, else what is wrong. */
async function checkEntry(dir: string, key: string): Promise<StoredEntry | string> {
  let entry: StoredEntry;
  try {
    entry = JSON.parse(fs.readFileSync(path.join(dir, entryName), 'utf8')) as StoredEntry;
  } catch (error) {
    return `has no readable ${entryName} (${(error as Error).message})`;
  }
  if (entry?.format !== wheelCacheFormat || entry.key !== key || !Array.isArray(entry.wheels) || entry.wheels.length === 0) return `has an invalid ${entryName}`;
  for (const w of entry.wheels) {
    if (typeof w?.file !== 'string' || !isWheelBasename(w.file) || typeof w.sha256 !== 'string') return `has an invalid ${entryName}`;
    const file = path.join(dir, w.file);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(file);
    } catch {
      return `lacks ${w.file}`;
    }
    if (!st.isFile()) return `has ${w.file} but not as a regular file`;
    if (st.size !== w.size) return `has ${w.file} with ${st.size} bytes, not ${w.size}`;
    const sha256 = await hashFile(file);
    if (sha256 !== w.sha256) return `has ${w.file} with sha256 ${sha256}, not ${w.sha256}`;
  }
  return entry;
}

function isWheelBasename(name: string): boolean {
  return name.endsWith('.whl') && name === path.basename(name) && !name.startsWith('.');
}

/** Out of sight first (a rename), so no reader ever sees half an entry; then removed. */
function discard(dir: string): void {
  const trash = path.join(path.dirname(dir), `.trash-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  try {
    fs.renameSync(dir, trash);
  } catch {
    return; // someone else removed it
  }
  safeRemoveTree(trash);
}

/**
 * Store the wheels of a build under `key`: copied into a temporary directory beside the entry,
 * checked against their entries (size, sha256), owned by root with mode 0644, then renamed into
 * place. When the key is already there (another imgbuild stored it first, even at the same
 * moment), that entry stays and ours is dropped: 'exists'.
 */
export async function storeWheels(cacheDir: string, key: string, files: string[], entries: ManifestWheel[]): Promise<'stored' | 'exists'> {
  const dir = wheelEntryDir(cacheDir, key);
  if (files.length === 0 || files.length !== entries.length) throw new Error(`storeWheels: ${files.length} files for ${entries.length} entries`);
  for (const w of entries) {
    if (!isWheelBasename(w.file) || !files.some((f) => path.basename(f) === w.file)) throw new Error(`storeWheels: no file for the entry ${w.file}`);
  }
  if (fs.existsSync(dir)) return 'exists';

  const shard = path.dirname(dir);
  fs.mkdirSync(shard, { recursive: true, mode: 0o755 });
  const tmp = fs.mkdtempSync(path.join(shard, `.tmp-${key.slice(0, 12)}-`));
  try {
    for (const w of entries) {
      const dest = path.join(tmp, w.file);
      await fs.promises.copyFile(files.find((f) => path.basename(f) === w.file)!, dest);
      rootOwned(dest, 0o644);
      const size = fs.statSync(dest).size;
      const sha256 = await hashFile(dest);
      if (size !== w.size || sha256 !== w.sha256) throw new Error(`storeWheels: ${w.file} (${size} bytes, sha256 ${sha256}) is not what its entry says (${w.size} bytes, ${w.sha256})`);
    }
    const entry: StoredEntry = { format: wheelCacheFormat, key, wheels: entries };
    fs.writeFileSync(path.join(tmp, entryName), `${JSON.stringify(entry, null, 2)}\n`);
    rootOwned(path.join(tmp, entryName), 0o644);
    rootOwned(tmp, 0o755);
    try {
      fs.renameSync(tmp, dir);
    } catch (error) {
      // rename(2) over a non-empty directory fails: the first entry stays.
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'exists';
      throw error;
    }
    return 'stored';
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

function rootOwned(p: string, mode: number): void {
  if (process.getuid?.() === 0) fs.chownSync(p, 0, 0);
  fs.chmodSync(p, mode);
}
