// Toolchain trees: the cross gcc of the image's own release, when the host has none of the image's
// gcc version. A host-architecture tree of that release with its gcc-N-TRIPLE, g++-N-TRIPLE and
// binutils-TRIPLE is unpacked once by mmdebstrap (--variant=extract: apt resolves and unpacks, no
// maintainer script and no emulation) from the image's own apt sources and keys, and cached as
// CACHE/toolchains/RELEASE-ARCH-gccN. The shim runs its programs through the tree's own loader and
// libraries (binds.ts), as it runs the host's.
import fs from 'node:fs';
import path from 'node:path';
import { withDir } from 'tmp-promise';
import { type Arch, archTable } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { PreconditionError, tailLines } from '../core/errors.js';
import { stage } from '../core/events.js';
import { fileId } from '../core/identity.js';
import { formatBytes } from '../core/units.js';
import { treeBytes } from '../host/cache-dir.js';
import { Namespace } from '../host/namespace.js';
import { resolveInRoot } from '../host/safe-path.js';
import { makeUndoer } from '../host/undoers.js';
import { hostBinfmtDir } from '../host/binfmt.js';
import { openTransaction } from '../undo/open.js';
import { imageAptSources } from './apt-sources.js';

export const stampName = 'imgbuild-toolchain.json';
/** The list of .deb files a tree was unpacked from (NAME_VERSION_ARCH.deb, the epoch's colon as %3a). */
export const debListName = 'imgbuild-debs.txt';

/** Package versions of a tree, from its list of .debs. */
export function treePackages(dir: string): Record<string, string> {
  let text = '';
  try {
    text = fs.readFileSync(path.join(dir, debListName), 'utf8');
  } catch {
    return {};
  }
  return Object.fromEntries(text.split('\n').flatMap((f) => {
    const m = /^([^_]+)_([^_]+)_[^_]+\.deb$/.exec(f.trim());
    return m ? [[m[1]!, decodeURIComponent(m[2]!)]] : [];
  }));
}

export interface ToolchainStamp {
  release: string;
  arch: Arch;
  triple: string;
  major: string;
  /** gcc -dumpfullversion of the tree's cross gcc. */
  version: string;
  made: string;
  bytes: number;
  /** The archives it came from. */
  uris: string[];
}

export function toolchainsDir(cacheDir: string): string {
  return path.join(cacheDir, 'toolchains');
}

export function toolchainName(release: string, arch: Arch, major: string): string {
  return `${release}-${arch}-gcc${major}`;
}

/** Finished trees (with their stamp), each with what it holds; `filter` by release and arch. */
export function listToolchains(cacheDir: string, filter?: { release: string; arch: Arch }): { dir: string; stamp: ToolchainStamp }[] {
  let names: string[] = [];
  try {
    names = fs.readdirSync(toolchainsDir(cacheDir));
  } catch {
    return [];
  }
  const found: { dir: string; stamp: ToolchainStamp }[] = [];
  for (const n of names.sort()) {
    const dir = path.join(toolchainsDir(cacheDir), n);
    try {
      const stamp = JSON.parse(fs.readFileSync(path.join(dir, stampName), 'utf8')) as ToolchainStamp;
      if (!filter || (stamp.release === filter.release && stamp.arch === filter.arch)) found.push({ dir, stamp });
    } catch {
      // not a finished tree
    }
  }
  return found;
}

/** The image's release codename (VERSION_CODENAME in /etc/os-release), as apt names its suite. */
export function imageRelease(rootHost: string): string | undefined {
  for (const f of ['/etc/os-release', '/usr/lib/os-release']) {
    const r = resolveInRoot(rootHost, f);
    if (r.type !== 'file') continue;
    const m = /^VERSION_CODENAME=["']?([a-z][a-z0-9-]*)/m.exec(fs.readFileSync(r.host, 'utf8'));
    if (m) return m[1];
  }
  return undefined;
}

export interface MakeToolchain {
  rootHost: string;
  arch: Arch;
  release: string;
  major: string;
  /** An archive that carries the host's architecture, instead of the image's own sources. */
  mirror?: string;
}

/** Make the tree (once: a finished one is reused); returns its directory. */
export async function makeToolchain(ctx: Context, o: MakeToolchain): Promise<string> {
  const triple = archTable[o.arch].triplet;
  const packages = [`gcc-${o.major}-${triple}`, `g++-${o.major}-${triple}`, `binutils-${triple}`];
  return makeTree<ToolchainStamp>(ctx, o, {
    name: toolchainName(o.release, o.arch, o.major),
    packages,
    what: `the gcc ${o.major} toolchain tree of ${o.release} for ${o.arch}`,
    stamp: async (tmp) => ({ release: o.release, arch: o.arch, triple, major: o.major, version: await treeGccVersion(ctx, tmp, triple, o.major) }),
    describe: (st) => `${triple}-gcc-${o.major} ${st.version} of ${o.release}`,
  });
}

export interface TreeSpec<S> {
  name: string;
  packages: string[];
  what: string;
  stamp: (tmp: string) => Promise<Omit<S, 'made' | 'bytes' | 'uris'>>;
  describe: (stamp: S) => string;
}

/** Make a tree (once: a finished one is reused) of the image's release with `spec.packages`, for the host's architecture; its directory. */
export async function makeTree<S extends { bytes: number }>(ctx: Context, o: { rootHost: string; release: string; mirror?: string }, spec: TreeSpec<S>): Promise<string> {
  const dir = path.join(toolchainsDir(ctx.cacheDir), spec.name);
  if (fs.existsSync(path.join(dir, stampName))) return dir;
  if (process.arch !== 'x64') throw new PreconditionError(`toolchain trees are made for x86-64 hosts; this one is ${process.arch}`, 'install the cross gcc of the image\'s version on the host, or use --accel none');
  fs.mkdirSync(toolchainsDir(ctx.cacheDir), { recursive: true, mode: 0o755 });
  const tmp = path.join(toolchainsDir(ctx.cacheDir), `.tmp-${process.pid}-${spec.name}`);
  const log = `${dir}.log`;
  let stamp: S | undefined;
  // Finished inside the journaled step: renamed into place before its undo (removal) would run.
  const finish = async (uris: string[]) => {
    stamp = { ...(await spec.stamp(tmp)), made: new Date().toISOString(), bytes: treeBytes(tmp), uris } as unknown as S;
    fs.writeFileSync(path.join(tmp, stampName), `${JSON.stringify(stamp, null, 2)}\n`);
    try {
      fs.renameSync(tmp, dir);
    } catch (error) {
      // Another run finished the same tree first: keep theirs.
      if (!fs.existsSync(path.join(dir, stampName))) throw error;
    }
  };
  await withDir(
    async (scratch) => {
      // apt reads the keys as its own unprivileged user: the public keys' directory is world-readable.
      fs.chmodSync(scratch.path, 0o755);
      const apt = imageAptSources(o.rootHost, o.release, scratch.path, o.mirror);
      await stage(ctx.emit, `make ${spec.what} (mmdebstrap ${spec.packages.join(' ')}, host architecture, once)`, () =>
        unpack(ctx, { tmp, log, packages: spec.packages, release: o.release, apt }, () => finish(apt.uris)),
      );
    },
    { unsafeCleanup: true, prefix: 'imgbuild-toolchain-' },
  );
  ctx.emit({ kind: 'notice', message: `toolchain tree ${dir}: ${spec.describe(stamp!)}, ${formatBytes(stamp!.bytes)} (imgbuild cache toolchains lists and removes trees)` });
  return dir;
}

interface Unpack {
  tmp: string;
  log: string;
  packages: string[];
  release: string;
  apt: { sources: string[]; keyring?: string };
}

// mmdebstrap in a namespace of its own: anything it mounts dies with it, and so does it with us.
// The half-made tree is journaled: `imgbuild recover` removes it after a kill -9.
async function unpack(ctx: Context, o: Unpack, finish: () => Promise<void>): Promise<void> {
  let ns: Namespace | undefined;
  const t = openTransaction(ctx, { verb: 'toolchain', undoer: makeUndoer({ run: ctx.run, binfmtDir: async () => hostBinfmtDir, nsPids: () => (ns ? [ns.pid] : []) }) });
  let primary: unknown;
  try {
    const held = await Namespace.open(ctx, { journal: t.journal });
    ns = held;
    t.tx.defer('end the toolchain namespace', () => held.close());
    await t.tx.change('remove the unfinished toolchain tree', { kind: 'workdir', path: o.tmp }, async () => {
      fs.mkdirSync(o.tmp, { mode: 0o755 });
      return { kind: 'workdir', path: o.tmp, id: fileId(o.tmp) };
    });
    // The .debs unpacked, named NAME_VERSION_ARCH, kept as a list: the tree has no dpkg database to say its versions.
    const hook = `--extract-hook=ls "$1/var/cache/apt/archives" > "$1/${debListName}"`;
    const args = ['--mode=root', '--variant=extract', '--arch=amd64', `--include=${o.packages.join(',')}`, '--aptopt=Acquire::Retries "3"', hook, ...(o.apt.keyring ? [`--keyring=${o.apt.keyring}`] : []), o.release, o.tmp, ...o.apt.sources];
    fs.writeFileSync(o.log, `# mmdebstrap ${args.join(' ')}\n`);
    const r = await held.exec('mmdebstrap', args, { allowFailure: true, pidns: true, logFile: o.log });
    if (r.exitCode !== 0) {
      const hint = /Unable to locate package|has no installation candidate/.test(r.all)
        ? `the image's archive has no ${o.packages[0]} for amd64 (Ubuntu's ports archive carries only ARM): give one that does with --toolchain-mirror URL, or use --toolchain host / --accel none`
        : `see ${o.log}; --toolchain host (or --accel none) builds without a tree`;
      // The host cannot get the compilers the build was told to use: checked before anything is built, nothing changed.
      throw new PreconditionError(`mmdebstrap could not make the toolchain tree (${o.packages.join(' ')} from ${o.release}), exit code ${r.exitCode}:\n${tailLines(r.all, 15)}`, hint);
    }
    await finish();
  } catch (error) {
    primary = error;
    throw error;
  } finally {
    // Its journaled undo removes the half-made tree (checked against the namespace's mounts).
    await t.close(primary);
  }
}

async function treeGccVersion(ctx: Context, root: string, triple: string, major: string): Promise<string> {
  const loader = rootLoader(root);
  if (!loader) throw new PreconditionError(`the toolchain tree ${root} has no x86-64 loader`, 'remove it (imgbuild cache toolchains --clear) and build again');
  const r = await ctx.run(loader.file, ['--library-path', loader.libs.join(':'), path.join(root, 'usr/bin', `${triple}-gcc-${major}`), '-dumpfullversion'], { quiet: true });
  return r.stdout.trim();
}

/** The x86-64 loader and library directories of a root (a tree, or the host's own '/'), as host paths, symlinks resolved inside it. */
export function rootLoader(root: string): { file: string; libs: string[] } | undefined {
  const libs = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu'].map((d) => resolveInRoot(root, d)).filter((r) => r.type === 'dir').map((r) => r.host);
  for (const l of ['/lib64/ld-linux-x86-64.so.2', '/usr/lib64/ld-linux-x86-64.so.2', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2']) {
    const r = resolveInRoot(root, l);
    if (r.type === 'file') return { file: r.host, libs: [...new Set(libs)] };
  }
  return undefined;
}
