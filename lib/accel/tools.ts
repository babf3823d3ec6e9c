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
  /** The image's file (the shim goes over it) and the host's program. */
  inner: string;
  hostFile: string;
}

const candidates: { name: string; pkg: string; file: string }[] = [
  { name: 'sh', pkg: 'dash', file: '/usr/bin/dash' },
  { name: 'make', pkg: 'make', file: '/usr/bin/make' },
  { name: 'ninja', pkg: 'ninja-build', file: '/usr/bin/ninja' },
  { name: 'cmake', pkg: 'cmake', file: '/usr/bin/cmake' },
  { name: 'protoc', pkg: 'protobuf-compiler', file: '/usr/bin/protoc' },
];

function statusOf(root: string): Map<string, string> {
  const r = resolveInRoot(root, '/var/lib/dpkg/status');
  return r.type === 'file' ? installedPackages(fs.readFileSync(r.host, 'utf8')) : new Map();
}

/**
 * The tools both the image and the host have at the same package version (and the file), and
 * for the others the image has, why they stay emulated.
 */
export function decideTools(rootHost: string, hostRoot = '/'): { native: NativeTool[]; emulated: string[] } {
  const image = statusOf(rootHost);
  const host = statusOf(hostRoot);
  const native: NativeTool[] = [];
  const emulated: string[] = [];
  for (const c of candidates) {
    const mine = image.get(c.pkg);
    if (!mine || resolveInRoot(rootHost, c.file).type !== 'file') continue;
    const theirs = host.get(c.pkg);
    const file = resolveInRoot(hostRoot, c.file);
    if (theirs === mine && file.type === 'file') native.push({ name: c.name, pkg: c.pkg, version: mine, inner: c.file, hostFile: file.host });
    else emulated.push(`${c.name} (the image's ${c.pkg} ${mine}; the host's ${theirs ?? 'none'})`);
  }
  return { native, emulated };
}

/** The shim over each tool's image file, mapped to the host's program (flags `host`). */
export function wrapTools(tree: AccelTree, tools: readonly NativeTool[]): void {
  for (const t of tools) tree.over(t.inner, tree.tool(t.hostFile, `host-${t.name}`), 'host');
}
