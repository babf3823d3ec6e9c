// Real upstream sources for the integration tests: Debian's orig tarballs, fetched once per
// machine with apt-get source through the host's own apt sources (bench/sources.ts; no mirror is
// named here) and cached with the tree they hold. The archive is part of this machine's world:
// a fetch that fails fails the test that needs it, with apt's words.
import { fetchSources, type SourceTree } from '../../bench/sources.js';
import { createContext } from '../../lib/core/context.js';

const cacheDir = '/var/cache/imgbuild/test-upstream';
const pending = new Map<string, Promise<SourceTree>>();

/** The upstream tree and tarball of a Debian source package: PKG of the host's release, or PKG/SUITE. */
export function upstream(pkg: string): Promise<SourceTree> {
  let p = pending.get(pkg);
  if (!p) {
    const ctx = createContext({});
    p = fetchSources(ctx.run, cacheDir, [pkg], (line) => process.stderr.write(`${line}\n`)).then((trees) => {
      const tree = trees[pkg]!;
      if (!tree.tarball) throw new Error(`${pkg}: the cached source has no tarball; remove ${cacheDir}/bench-src/${pkg} and run again`);
      return tree;
    });
    pending.set(pkg, p);
  }
  return p;
}
