// Deleting never crosses a mount: a tree is removed only when nothing is mounted at or below
// it, in this namespace or in any namespace we name. rm --one-file-system is not enough: a bind
// mount from the same filesystem is not a filesystem boundary.
import fs from 'node:fs';
import path from 'node:path';
import { ImgbuildError } from '../core/errors.js';
import { type MountEntry, mountsAtOrBelow, readMountinfo } from '../parse/mountinfo.js';

export class MountedBelowError extends ImgbuildError {
  constructor(dir: string, mounts: MountEntry[]) {
    super(
      `refusing to remove ${dir}: ${mounts.map((m) => m.target).join(', ')} ${mounts.length === 1 ? 'is' : 'are'} mounted at or below it`,
      'unmount those first (imgbuild umount, or imgbuild recover for a dead session)',
    );
  }
}

/** Throws if anything is mounted at or below `dir` in our namespace or the namespaces of `pids`. */
export function assertNothingMounted(dir: string, pids: number[] = []): void {
  const abs = path.resolve(dir);
  const found = mountsAtOrBelow(readMountinfo('self'), abs);
  for (const pid of pids) {
    try {
      found.push(...mountsAtOrBelow(readMountinfo(pid), abs));
    } catch {
      // that namespace is gone
    }
  }
  if (found.length > 0) throw new MountedBelowError(abs, found);
}

/** Remove a directory tree after checking that no mount is at or below it. */
export function safeRemoveTree(dir: string, pids: number[] = []): void {
  if (!fs.existsSync(dir)) return;
  assertNothingMounted(dir, pids);
  fs.rmSync(dir, { recursive: true, force: true });
}
