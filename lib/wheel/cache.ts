// The wheel cache's entries, content-addressed (CACHE/wheels/<key[0:2]>/<key>/): written once by
// an atomic rename, never changed, and verified against their sha256 on every lookup.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashFile } from '../core/hash.js';
import type { ManifestWheel } from './manifest.js';
import { safeRemoveTree } from '../host/safe-remove.js';
import { wheelCacheFormat } from './cache-key.js';

const entryName = 'entry.json';

export function wheelsDir(cacheDir: string): string {
  return path.join(cacheDir, 'wheels');
}

/** Where the entry of `key` lives (whether or not it exists). */
export function wheelEntryDir(cacheDir: string, key: string): string {
  checkKey(key);
  return path.join(wheelsDir(cacheDir), key.slice(0, 2), key);
}

function checkKey(key: string): void {
  if (!/^[0-9a-f]{64}$/.test(key)) throw new Error(`not a wheel cache key: ${key}`);
}

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

// The stored entry when every wheel is there with its size and sha256, else what is wrong.
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

// Out of sight first (a rename), so no reader ever sees half an entry; then removed.
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
