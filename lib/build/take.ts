// Wheels between the build tree, which build code writes, and the host: taken out through one
// descriptor that follows no link, and put back only through real directories.
import fs from 'node:fs';
import path from 'node:path';
import { StepError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';

/**
 * A wheel in the build tree, copied into `dir` (out of the chroot's reach) through one descriptor
 * opened without following links: a later swap of the tree's file changes nothing here.
 */
export function takeWheel(file: string, dir: string): string {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    if (!fs.fstatSync(fd).isFile()) throw new StepError(`${file} is not a regular file`, 'a build step put something else where a wheel belongs');
    const dest = path.join(dir, path.basename(file));
    fs.rmSync(dest, { force: true });
    // The descriptor's own file, whatever the path now leads to.
    fs.copyFileSync(`/proc/self/fd/${fd}`, dest, fs.constants.COPYFILE_EXCL);
    return dest;
  } finally {
    fs.closeSync(fd);
  }
}

/** A copy into the build tree (which the chroot writes): only through a real directory, never over a link. */
export function copyIntoTree(file: string, tree: string, inner: string): void {
  const dir = resolveInRoot(tree, path.posix.dirname(inner));
  if (dir.type !== 'dir' || dir.inner !== path.posix.dirname(inner)) throw new StepError(`${path.posix.dirname(inner)} in the build tree is not a plain directory (it leads to ${dir.inner})`, 'a build step replaced it; the wheel is not copied through it');
  const dest = path.join(dir.host, path.posix.basename(inner));
  if (fs.lstatSync(dest, { throwIfNoEntry: false })) fs.rmSync(dest, { force: true });
  fs.copyFileSync(file, dest, fs.constants.COPYFILE_EXCL);
}
