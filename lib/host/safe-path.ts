// Paths inside an untrusted image are resolved inside the image root, the way openat2's
// RESOLVE_IN_ROOT would: an absolute symlink is taken relative to the root and `..` stops at it.
// mount(2), cp and fs.writeFile all follow symlinks, so nothing is ever done to an unresolved path.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';

export interface Resolved {
  /** Path inside the image, absolute, with no symlinks. */
  inner: string;
  /** The same on the host (root + inner). */
  host: string;
  /** What is there: 'missing' when the last component does not exist. */
  type: 'file' | 'dir' | 'missing' | 'other';
}

const maxLinks = 40;

/**
 * Resolve `inner` (absolute, inside the image) under `root`. Every component but the last must
 * exist; the last may be missing. Throws when a non-final component is missing or not a dir.
 */
export function resolveInRoot(root: string, inner: string): Resolved {
  let links = 0;
  const done: string[] = [];
  const todo = inner.split('/').filter((c) => c && c !== '.');
  while (todo.length > 0) {
    const part = todo.shift()!;
    if (part === '..') {
      done.pop();
      continue;
    }
    const hostPath = path.join(root, ...done, part);
    let st: fs.Stats;
    try {
      st = fs.lstatSync(hostPath);
    } catch {
      if (todo.length === 0) return { inner: `/${[...done, part].join('/')}`, host: hostPath, type: 'missing' };
      // A missing middle component: report the rest as missing below it.
      return { inner: `/${[...done, part, ...todo].join('/')}`, host: path.join(root, ...done, part, ...todo), type: 'missing' };
    }
    if (st.isSymbolicLink()) {
      if (++links > maxLinks) throw new PreconditionError(`too many symlinks resolving ${inner} in the image`);
      const target = fs.readlinkSync(hostPath);
      if (target.startsWith('/')) done.length = 0;
      todo.unshift(...target.split('/').filter((c) => c && c !== '.'));
      continue;
    }
    if (todo.length > 0 && !st.isDirectory()) {
      throw new PreconditionError(`${path.posix.join('/', ...done, part)} in the image is not a directory (resolving ${inner})`);
    }
    done.push(part);
    if (todo.length === 0) {
      return { inner: `/${done.join('/')}`, host: hostPath, type: st.isDirectory() ? 'dir' : st.isFile() ? 'file' : 'other' };
    }
  }
  return { inner: '/', host: root, type: 'dir' };
}

/** True if `host` is `root` or below it, on component boundaries. */
export function isInside(root: string, host: string): boolean {
  const r = path.resolve(root);
  const h = path.resolve(host);
  return h === r || h.startsWith(r.endsWith('/') ? r : `${r}/`);
}

/** The first `n` bytes of a file (fewer if shorter), never through a symlink. */
export function readHead(file: string, n: number): Buffer {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    const b = Buffer.alloc(n);
    const got = fs.readSync(fd, b, 0, n, 0);
    return b.subarray(0, got);
  } finally {
    fs.closeSync(fd);
  }
}

// Kernel interfaces that look like directories but take no files (statfs f_type).
const pseudoFilesystems: Record<number, string> = { 0x9fa0: 'proc', 0x62656572: 'sysfs', 0x27e0eb: 'cgroup', 0x63677270: 'cgroup2', 0x1cd1: 'devpts', 0x64626720: 'debugfs', 0x73636673: 'securityfs', 0xcafe4a11: 'bpf', 0x74726163: 'tracefs', 0x42494e4d: 'binfmt_misc', 0x62656570: 'configfs', 0x6165676c: 'pstore', 0xde5e81e4: 'efivarfs' };

/** The kernel pseudo filesystem `dir` is on (proc, sysfs, ...), or undefined for a real one. */
export function pseudoFilesystem(dir: string): string | undefined {
  try {
    return pseudoFilesystems[fs.statfsSync(dir).type];
  } catch {
    return undefined;
  }
}

