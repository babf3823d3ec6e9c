// Files imgbuild ships beside its code (lib/accel/shim.c, lib/build/build-wheel.py), found from the
// package root: the same whether this module runs from dist/lib/ (tsc output, the tests' library
// imports) or from the single-file dist/imgbuild.mjs (the command).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

let root: string | undefined;

/** The directory of imgbuild's package.json, searched upwards from this module. */
export function packageRoot(): string {
  if (root) return root;
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    try {
      if ((JSON.parse(fs.readFileSync(manifest, 'utf8')) as { name?: string }).name === 'imgbuild') return (root = dir);
    } catch {
      // not here
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error(`imgbuild's package.json not found above ${fileURLToPath(import.meta.url)}`);
    dir = up;
  }
}

/** A shipped file, by its path in the package ("lib/build/build-wheel.py"). */
export function packageFile(relative: string): string {
  return path.join(packageRoot(), relative);
}

/** imgbuild's own version, from its package.json (not the one nearest the current directory). */
export function packageVersion(): string {
  try {
    return (JSON.parse(fs.readFileSync(packageFile('package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}
