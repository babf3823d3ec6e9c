// --accel full: the build tools whose output does not depend on the machine they run on, run as the
// host's own programs when the host has the very same Debian package version as the image (the
// build layer's, after apt): sh (dash), make, ninja, cmake and protoc. Each is the shim over the
// image's file, mapped to the host program with the `host` flag: the host's runtime, and uname()
// answering the board's machine (uname.c), as qemu-user answers for the image's own. bash (its
// HOSTTYPE) and pkg-config (its search path) are machine-dependent and stay emulated.
import fs from 'node:fs';
import { installedPackages } from '../parse/dpkg-status.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { AccelTree } from './tree.js';

/** A tool the host runs for the image: its name, Debian package and version, and its file. */
export interface NativeTool {
  name: string;
  pkg: string;
  version: string;
  /** The image's file (the shim goes over it) and the host-architecture program, below `root`. */
  inner: string;
  hostFile: string;
  /** '/' for the host's own program, else the Python tree's directory. */
  root: string;
}

// Where each lives; Debian before 12 (not merged-/usr) keeps dash in /bin.
const candidates: { name: string; pkg: string; files: string[] }[] = [
  { name: 'sh', pkg: 'dash', files: ['/usr/bin/dash', '/bin/dash'] },
  { name: 'make', pkg: 'make', files: ['/usr/bin/make'] },
  { name: 'ninja', pkg: 'ninja-build', files: ['/usr/bin/ninja'] },
  { name: 'cmake', pkg: 'cmake', files: ['/usr/bin/cmake'] },
  { name: 'protoc', pkg: 'protobuf-compiler', files: ['/usr/bin/protoc'] },
];

/** The first of `files` that is a file below `root` (resolved there), as an inner path. */
function fileIn(root: string, files: string[]): string | undefined {
  return files.find((f) => resolveInRoot(root, f).type === 'file');
}

function statusOf(root: string): Map<string, string> {
  const r = resolveInRoot(root, '/var/lib/dpkg/status');
  return r.type === 'file' ? installedPackages(fs.readFileSync(r.host, 'utf8')) : new Map();
}

// A binNMU (+bN) rebuilds the same source for one architecture: the same program.
const sourceVersion = (v: string | undefined) => v?.replace(/\+b\d+$/, '');

/**
 * The tools the image has whose very version (binNMUs aside) the host has, or else a Python tree
 * of the image's release (its `packages` as its stamp records them), with the file; for the
 * others the image has, why they stay emulated.
 */
export function decideTools(rootHost: string, hostRoot = '/', tree?: { dir: string; packages: Record<string, string> }): { native: NativeTool[]; emulated: string[] } {
  const image = statusOf(rootHost);
  const roots = [{ root: hostRoot, versions: statusOf(hostRoot), what: "the host's" }, ...(tree ? [{ root: tree.dir, versions: new Map(Object.entries(tree.packages)), what: "the tree's" }] : [])];
  const native: NativeTool[] = [];
  const emulated: string[] = [];
  for (const c of candidates) {
    const mine = image.get(c.pkg);
    const inner = fileIn(rootHost, c.files);
    if (!mine || !inner) continue;
    const found = roots.find((r) => sourceVersion(r.versions.get(c.pkg)) === sourceVersion(mine) && fileIn(r.root, c.files));
    if (found) native.push({ name: c.name, pkg: c.pkg, version: mine, inner, hostFile: resolveInRoot(found.root, fileIn(found.root, c.files)!).host, root: found.root });
    else emulated.push(`${c.name} (the image's ${c.pkg} ${mine}; ${roots.map((r) => `${r.what} ${r.versions.get(c.pkg) ?? 'none'}`).join(', ')})`);
  }
  return { native, emulated };
}

/** The shim over each tool's image file, mapped to the host's program (flags `host`) or the Python tree's (`tree`). */
export function wrapTools(tree: AccelTree, tools: readonly NativeTool[]): void {
  for (const t of tools) tree.over(t.inner, tree.tool(t.hostFile, `${t.root === '/' ? 'host' : 'tree'}-${t.name}`), t.root === '/' ? 'host' : 'tree');
}
