// The overlay session's root: the image's root (read-only) under a writable upper layer, kept
// in a directory the caller names or in a tmpfs that dies with the session.
import fs from 'node:fs';
import path from 'node:path';
import type { Namespace } from '../host/namespace.js';
import type { Transaction } from '../undo/transaction.js';
import { mountIn } from './mounts.js';

/** The namespace directories an overlay is made of. */
export interface OverlayDirs {
  /** The image's root, already mounted. */
  lower: string;
  /** Where the tmpfs upper layer goes when no `upper` directory is given. */
  upperTmpfs: string;
  /** Where the overlay is mounted. */
  root: string;
}

/** Mount the overlay at `dirs.root`, its upper layer in `upperDir` (a host directory) or a fresh tmpfs. */
export async function mountOverlay(tx: Transaction, ns: Namespace, dirs: OverlayDirs, upperDir: string | undefined): Promise<void> {
  let upper: string;
  if (upperDir) {
    upper = path.resolve(upperDir);
  } else {
    await mountIn(tx, ns, 'overlay upper tmpfs', ['-t', 'tmpfs', '-o', 'mode=0700,nosuid', 'imgbuild-upper'], dirs.upperTmpfs);
    upper = dirs.upperTmpfs;
  }
  for (const d of ['data', 'work']) fs.mkdirSync(path.join(ns.hostPath(upper), d), { recursive: true });
  // overlayfs opens device nodes by its own mount flags, not the lower layer's: nodev here too.
  await mountIn(tx, ns, 'overlay root', ['-t', 'overlay', '-o', `nodev,lowerdir=${dirs.lower},upperdir=${upper}/data,workdir=${upper}/work`, 'imgbuild-root'], dirs.root);
}
