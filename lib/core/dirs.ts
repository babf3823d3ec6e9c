// Directories made the way that always ends.
import fs from 'node:fs';
import path from 'node:path';

/**
 * mkdir -p that ends: Node's recursive mkdir spins for ever (and deaf to signals) where mkdir
 * answers ENOENT under an existing directory, as in /proc. Each missing component is made in
 * turn; any error is thrown as it is.
 */
export function makeDirs(dir: string, mode = 0o755): void {
  const parts = path.resolve(dir).split('/').filter(Boolean);
  let p = '';
  for (const part of parts) {
    p += `/${part}`;
    try {
      fs.mkdirSync(p, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      if (!fs.statSync(p).isDirectory()) throw Object.assign(new Error(`${p} is not a directory`), { code: 'ENOTDIR' });
    }
  }
}
