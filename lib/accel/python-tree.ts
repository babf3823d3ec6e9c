// Python trees (--accel full): a host-architecture tree of the image's release with its python3.X
// and the build tools tools.ts may run natively (dash, make, cmake, ninja, protoc), made once like
// a toolchain tree (toolchain.ts) and cached as CACHE/toolchains/RELEASE-buildtools-python3.X, with
// the versions of the packages it holds (from the .debs it was unpacked from).
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { pythonVersionIn } from '../parse/python-version.js';
import { makeTree, stampName, toolchainsDir, treePackages } from './toolchain.js';

/** The build tools a Python tree carries besides python3.X (tools.ts says which may run natively). */
export const treeTools = ['dash', 'make', 'cmake', 'ninja-build', 'protobuf-compiler'];

/** What a Python tree holds. */
export interface PythonTreeStamp {
  release: string;
  python: string;
  /** X.Y.Z of its binary. */
  version: string;
  /** The Debian version of each package it holds (python3.X, the tools and what they depend on). */
  packages: Record<string, string>;
  made: string;
  bytes: number;
  uris: string[];
}

export function pythonTreeName(release: string, xy: string): string {
  return `${release}-buildtools-python${xy}`;
}

/** The finished Python tree of a release and version, with its stamp, if there is one. */
export function findPythonTree(cacheDir: string, release: string, xy: string): { dir: string; stamp: PythonTreeStamp } | undefined {
  const dir = path.join(toolchainsDir(cacheDir), pythonTreeName(release, xy));
  try {
    return { dir, stamp: JSON.parse(fs.readFileSync(path.join(dir, stampName), 'utf8')) as PythonTreeStamp };
  } catch {
    return undefined;
  }
}

/** Make (once) the tree of the image's release with its host-architecture python3.X and build tools, for --accel full. */
export async function makePythonTree(ctx: Context, o: { rootHost: string; release: string; xy: string; mirror?: string }): Promise<string> {
  const packages = [`python${o.xy}`, ...treeTools];
  return makeTree<PythonTreeStamp>(ctx, o, {
    name: pythonTreeName(o.release, o.xy),
    packages,
    what: `the Python ${o.xy} and build tools tree of ${o.release}`,
    stamp: async (tmp) => ({
      release: o.release,
      python: o.xy,
      version: pythonVersionIn(fs.readFileSync(path.join(tmp, 'usr/bin', `python${o.xy}`)), o.xy) ?? 'unknown',
      packages: treePackages(tmp),
    }),
    describe: (st) => `python${o.xy} ${st.version} and ${treeTools.map((t) => `${t} ${st.packages[t] ?? '?'}`).join(', ')} of ${o.release}`,
  });
}
