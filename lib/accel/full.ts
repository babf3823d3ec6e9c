// --accel full in a session: besides the cross compilers (binds.ts), the build's Python (python.ts)
// and its build tools (tools.ts) run as host programs where the host (or a Python tree of the
// image's release) has the very version the image has.
import fs from 'node:fs';
import path from 'node:path';
import type { Arch } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { errorMessage } from '../core/errors.js';
import type { Session } from '../session/index.js';
import { describeInterpreter, type Interpreter } from '../session/pythons.js';
import type { AccelRequest } from './decide.js';
import { bindPython, decidePython, type PythonDecision } from './python.js';
import { ensureUnamePreload } from './shim.js';
import { bindHostFirstRuntime, bindRuntime, rootLoaderHasArgv0 } from './binds.js';
import { findPythonTree, makePythonTree } from './python-tree.js';
import { imageRelease } from './toolchain.js';
import { decideTools, wrapTools } from './tools.js';
import type { AccelTree } from './tree.js';

/**
 * The host Python of the image's version and the host's build tools, put in the accel tree (its
 * binds and map), `env` given what the tools' uname preload reads. Says what runs natively and what not.
 */
export async function enableFull(ctx: Context, s: Session, tree: AccelTree, env: Record<string, string>, given?: Interpreter): Promise<{ python: PythonDecision & { inner?: string }; native: string[] }> {
  const interp = given ?? describeInterpreter(s.rootHost, '/usr/bin/python3');
  const pyTree = interp ? pythonTree(ctx, s.rootHost, interp.version) : undefined;
  let python: PythonDecision & { inner?: string } = decidePython(s.rootHost, interp, s.arch, ['/', ...(pyTree ? [pyTree.dir] : [])]);
  if (python.kind === 'host' && interp) python = { ...python, inner: bindPython(tree, python.python, { xy: interp.version, arch: s.arch, machine: s.machine }) };
  const tools = decideTools(s.rootHost, '/', pyTree ? { dir: pyTree.dir, packages: pyTree.stamp.packages ?? {} } : undefined);
  if (tools.native.length > 0) {
    fs.copyFileSync(await ensureUnamePreload(ctx), tree.inAccel('uname.so'));
    env.IMGBUILD_TARGET_MACHINE = s.machine;
    wrapTools(tree, tools.native);
  }
  if (pyTree && tools.native.some((t) => t.root === pyTree.dir)) {
    // The tree's own loader, or the host's newer one where the tree's cannot keep argv[0].
    const own = rootLoaderHasArgv0(pyTree.dir);
    for (const d of ['tt', ...(own ? ['tt/lib', 'tt/lib2'] : ['tt/lib3', 'tt/lib4'])]) fs.mkdirSync(tree.inAccel(d));
    if (own) bindRuntime(tree, pyTree.dir, 'tt/');
    else bindHostFirstRuntime(tree, pyTree.dir, 'tt/');
  }
  const native = tools.native.map((t) => `${t.name} (${t.pkg} ${t.version}${t.root === '/' ? '' : `, ${path.basename(t.root)}`})`);
  ctx.emit({ kind: 'notice', message: `accel full: build tools run natively, the same versions as the image's: ${native.join(', ') || 'none'}${tools.emulated.length ? `; emulated: ${tools.emulated.join(', ')}` : ''}` });
  return { python, native: [...(python.kind === 'host' ? [`python (${python.python.version})`] : []), ...native] };
}

/** The finished Python tree of the image's release for Python X.Y, if there is one. */
function pythonTree(ctx: Context, rootHost: string, xy: string): ReturnType<typeof findPythonTree> {
  const release = imageRelease(rootHost);
  return release ? findPythonTree(ctx.cacheDir, release, xy) : undefined;
}

/**
 * --accel full: a Python tree of the image's release is made (once) when the host has no Python of
 * the image's version. One that cannot be made only means the emulated Python, with the reason.
 */
export async function preparePython(ctx: Context, req: AccelRequest, arch: Arch, rootHost: string, python: Interpreter): Promise<void> {
  const tree = pythonTree(ctx, rootHost, python.version);
  const d = decidePython(rootHost, python, arch, ['/', ...(tree ? [tree.dir] : [])]);
  const release = imageRelease(rootHost);
  if (d.kind !== 'emulated' || !d.missing || !release || req.toolchain === 'host') return;
  try {
    await makePythonTree(ctx, { rootHost, release, xy: python.version, ...(req.toolchainMirror ? { mirror: req.toolchainMirror } : {}) });
  } catch (error) {
    ctx.emit({ kind: 'warn', message: `no Python tree for --accel full: ${errorMessage(error)}` });
  }
}

