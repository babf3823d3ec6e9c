// The host cache directory: what is in it, how big, and clearing parts of it safely (never
// through a mount, never a workspace a running build holds).
import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { lockHolder } from './namespace.js';
import { safeRemoveTree } from './safe-remove.js';

export const cacheParts: Record<string, string> = {
  samples: 'sample images and their rootfs trees',
  git: 'git clones of sources, reused across builds',
  pip: 'pip requirements downloaded on the host, per python and platform',
  // wheels/<key[0:2]>/<key>/ entries and wheels/images/ (image hashes): clearing removes whole
  // shards; a build storing into one at that moment fails that one store, nothing else.
  wheels: 'built wheels by the hash of everything that went into them, reused by the same build',
  ccache: 'compiler cache per image arch and compiler, used by --accel cross',
  toolchains: 'cross gcc trees of image releases the host has no cross gcc for (--toolchain), one per release, arch and gcc version; Python trees of releases whose Python the host lacks (--accel full)',
  work: 'default build workspaces (emptied after a successful build)',
  vm: 'the VM of the VM test tier',
};

export interface CachePart {
  name: string;
  path: string;
  describe: string;
  bytes: number;
  /** What is in it, where that says more than a size (the toolchain trees). */
  entries?: string[];
}

/** Bytes used by a tree (allocated blocks, so sparse images count as what they take). */
export function treeBytes(p: string): number {
  let st: fs.Stats;
  try {
    st = fs.lstatSync(p);
  } catch {
    return 0;
  }
  let n = st.blocks * 512;
  if (st.isDirectory()) for (const e of fs.readdirSync(p)) n += treeBytes(path.join(p, e));
  return n;
}

export function listCache(cacheDir: string): CachePart[] {
  return Object.entries(cacheParts).map(([name, describe]) => {
    const p = path.join(cacheDir, name);
    const entries = name === 'toolchains' && fs.existsSync(p) ? fs.readdirSync(p).filter((e) => !e.startsWith('.') && !e.endsWith('.log')).sort() : undefined;
    return { name, path: p, describe, bytes: treeBytes(p), ...(entries ? { entries } : {}) };
  });
}

// A tree still being made (toolchains/.tmp-PID-NAME) by a live process.
function unfinishedBy(entry: string): { pid: number } | undefined {
  const pid = Number(/^\.tmp-(\d+)-/.exec(entry)?.[1]);
  return pid && fs.existsSync(`/proc/${pid}`) ? { pid } : undefined;
}

/**
 * Remove cache parts (all when `names` is empty). A workspace or clone locked by a running
 * imgbuild is skipped and named in the result; a tree with anything mounted below it is refused.
 */
export function clearCache(cacheDir: string, names: string[]): { removed: string[]; skipped: string[] } {
  for (const n of names) if (!(n in cacheParts)) throw new UsageError(`no cache part called ${n}`, `parts: ${Object.keys(cacheParts).join(', ')}`);
  const removed: string[] = [];
  const skipped: string[] = [];
  for (const name of names.length ? names : Object.keys(cacheParts)) {
    const dir = path.join(cacheDir, name);
    if (!fs.existsSync(dir)) continue;
    for (const entry of fs.readdirSync(dir)) {
      const p = path.join(dir, entry);
      const lock = entry.endsWith('.lock') ? p : path.join(p, '.imgbuild.lock');
      // A workspace or clone holds a lock file; an image is locked itself by its session.
      const held = (fs.existsSync(lock) ? lockHolder(lock) : undefined) ?? (fs.statSync(p).isFile() ? lockHolder(p) : undefined) ?? unfinishedBy(entry);
      const sibling = fs.existsSync(`${p}.lock`) ? lockHolder(`${p}.lock`) : undefined;
      if (held || sibling) {
        skipped.push(`${p} (in use by process ${(held ?? sibling)!.pid})`);
        continue;
      }
      safeRemoveTree(p);
      removed.push(p);
    }
  }
  return { removed, skipped };
}
