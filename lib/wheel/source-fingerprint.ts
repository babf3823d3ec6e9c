// The source's identity for the wheel cache key: a tree hash of a directory, the hash of an
// sdist, or a git commit.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { hashFile } from '../core/hash.js';
import { type FetchedSource, skippedTopLevel, type TargetSource } from '../targets/types.js';

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

// Names are Buffers throughout: a file name that is not UTF-8 must still be found and counted.
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
