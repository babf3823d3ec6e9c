// Compiler acceleration: inside the emulated chroot, the compiler driver, cc1/cc1plus, the
// assembler and the linker run as the host's native cross tools for the image's arch, while
// make, sh and python stay emulated. The cross tools are the host's, or those of a toolchain tree
// of the image's own release (toolchain.ts) when the host has none of the image's gcc version.
// Read-only binds of a small static shim (lib/accel/shim.c) go over the image's own compiler
// files; the shim runs the mapped tool through its root's loader and libraries, bound under
// /run/imgbuild-accel (the session's own tmpfs). The image's
// headers, crt files, libgcc and libstdc++ are the ones used. All binds go in one mount batch
// and come off in one, before the session's other mounts.
import path from 'node:path';
import { type Arch, needsEmulation } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { errorMessage, PreconditionError } from '../core/errors.js';
import { holdLock } from '../host/lock.js';
import type { Session } from '../session/index.js';
import { describeInterpreter, type Interpreter } from '../session/pythons.js';
import { bindHostRuntime, imageGccPaths, wrapCompiler } from './binds.js';
import { type AccelDecision, type Accelerated, type AccelRequest, decideAccel } from './decide.js';
import { addLauncher, guardDpkg, writeShimConfig } from './launcher.js';
import { enableFull, preparePython } from './full.js';
import type { PythonDecision } from './python.js';
import { ensureShim } from './shim.js';
import { imageRelease, listToolchains, makeToolchain } from './toolchain.js';
import { AccelTree } from './tree.js';

export { type AccelDecision, type AccelMode, type AccelRequest, type HostCross, type ToolchainChoice, accelIdentity, accelModes, decideAccel, hostCross, hostCrossVersions, toolchainChoices } from './decide.js';
export { type ImageGcc, gccConfigureLine, imageGcc, targetDefaults, targetFlags } from './gcc.js';
export { ensureShim } from './shim.js';
export { decidePython, type HostPython, type PythonDecision, pythonPatchVersion } from './python.js';
export { imageRelease, listToolchains, makeToolchain, type ToolchainStamp, toolchainsDir } from './toolchain.js';
export { accelRoot } from './tree.js';
export * from './distcc.js';

export interface AccelOptions {
  /** Bind a guard over dpkg while the binds are up. */
  guardDpkg?: boolean;
  /** The image's Python the build uses (--accel full runs a host Python of its version). */
  python?: Interpreter;
}

export interface AccelHandle {
  decision: AccelDecision;
  /** Environment the build's commands get (the shim sets the same itself). */
  env: Record<string, string>;
  /** The ccache directory on the host, when ccache is used. */
  ccacheDir?: string;
  mounts: number;
  /** --accel full: where the front end's host Python is in the chroot (`inner`), or why the image's emulated one runs. */
  python?: PythonDecision & { inner?: string };
  /** --accel full: the build tools the host runs for the image ("make 4.3-4.1"). */
  native: string[];
  /** Remove every accel bind now (before apt or dpkg runs); also registered as an undo step. */
  disable(): Promise<void>;
}

/**
 * Bind the host's cross tools over the image's compiler in the session's chroot. The binds are
 * read-only (the ccache directory excepted), gone when the session closes or `disable()` runs.
 */
export async function enableAccel(ctx: Context, s: Session, decision: Accelerated, o: AccelOptions = {}): Promise<AccelHandle> {
  const shim = await ensureShim(ctx);
  const { host } = decision;
  if (host.tree) {
    // Held while the session lives: `imgbuild cache toolchains --clear` leaves a tree in use alone.
    const lock = await holdLock(ctx, path.join(host.root, '.imgbuild.lock'), `toolchain tree ${host.tree}`, undefined, { shared: true });
    s.defer(`release the toolchain tree ${host.tree}`, () => lock.release());
  }
  const tree = new AccelTree(s, shim);
  bindHostRuntime(tree, decision.host);
  wrapCompiler(tree, decision);
  const env = imageGccPaths(tree, decision);
  const { launcher, ccacheDir } = await addLauncher(ctx, s.arch, tree, decision, env, shim);
  const full = decision.full ? await enableFull(ctx, s, tree, env, o.python) : undefined;
  const python = full?.python;
  writeShimConfig(tree, decision, launcher, env);
  if (o.guardDpkg) guardDpkg(tree);
  const disable = await s.bindGroup({ binds: tree.binds, undo: 'remove the host compiler binds', what: 'the host compiler', noun: 'accel bind' });
  // $IMGBUILD_PYTHON names the host Python to commands of `imgbuild run` and `shell` (the build's front end uses it by itself).
  const handleEnv = python?.inner ? { ...env, IMGBUILD_PYTHON: python.inner } : env;
  return { decision, env: handleEnv, ...(ccacheDir ? { ccacheDir } : {}), ...(python ? { python } : {}), native: full?.native ?? [], mounts: tree.binds.length, disable };
}

/**
 * The decision, with a toolchain tree of the image's release made first when the cross gcc of the
 * image's version is what is missing (--toolchain auto or tree; a cached tree is reused). In auto
 * mode a tree that cannot be made means emulation, with the reason; explicitly asked for, an error.
 */
export async function decideWithToolchain(ctx: Context, req: AccelRequest, arch: Arch, rootHost: string, python?: Interpreter): Promise<AccelDecision> {
  const decision = await decideCompiler(ctx, req, arch, rootHost);
  if (decision.kind !== 'none' && decision.full && python) await preparePython(ctx, req, arch, rootHost, python);
  return decision;
}

async function decideCompiler(ctx: Context, req: AccelRequest, arch: Arch, rootHost: string): Promise<AccelDecision> {
  const release = imageRelease(rootHost);
  const trees = () => (release ? listToolchains(ctx.cacheDir, { release, arch }).map((t) => t.dir) : []);
  const decide = () => decideAccel(req, arch, rootHost, '/', trees());
  // What auto would find, without failing: whether a tree is what is missing.
  const { distccHosts: _servers, ...asked } = req;
  const probe = decideAccel({ ...asked, mode: req.mode === 'none' ? 'none' : 'auto' }, arch, rootHost, '/', trees());
  if (probe.kind !== 'none' || !probe.missing || (req.toolchain ?? 'auto') === 'host') return decide();
  const strict = req.toolchain === 'tree' || req.mode !== 'auto';
  try {
    if (!release) throw new PreconditionError("the image's release is unknown (no VERSION_CODENAME in its /etc/os-release), so there is no toolchain tree to make for it", 'install the cross gcc of the image\'s version on the host');
    await makeToolchain(ctx, { rootHost, arch, release, major: probe.missing.major, ...(req.toolchainMirror ? { mirror: req.toolchainMirror } : {}) });
  } catch (error) {
    if (strict) throw error;
    ctx.emit({ kind: 'warn', message: `no toolchain tree: ${errorMessage(error)}` });
  }
  return decide();
}

/**
 * Decide and, when it applies, enable acceleration in a session; says what it chose and why.
 * Returns the environment for the chroot's commands (empty without acceleration).
 */
export async function startAccel(ctx: Context, s: Session, req: AccelRequest, o: AccelOptions = {}): Promise<{ decision: AccelDecision; handle?: AccelHandle; env: Record<string, string> }> {
  const decision = await decideWithToolchain(ctx, req, s.arch, s.rootHost, o.python ?? describeInterpreter(s.rootHost, '/usr/bin/python3'));
  if (decision.kind === 'none') {
    if (req.mode === 'auto' && needsEmulation(s.arch)) ctx.emit({ kind: 'warn', message: `${decision.reason}; builds run fully emulated (slow)` });
    return { decision, env: {} };
  }
  const handle = await enableAccel(ctx, s, decision, o);
  ctx.emit({ kind: 'notice', message: `accel: ${decision.reason}${handle.ccacheDir ? `; ccache in ${handle.ccacheDir}` : ''}` });
  if (handle.python) ctx.emit({ kind: handle.python.kind === 'host' ? 'notice' : 'warn', message: `accel full: ${handle.python.reason}${handle.python.inner ? ` (${handle.python.inner})` : ''}` });
  return { decision, handle, env: handle.env };
}
