// --accel full: the build's front end and backend run under a host-architecture Python of exactly the
// image's Python version (crossenv-style), instead of the image's Python under qemu. Under
// /run/imgbuild-accel/py the chroot gets a Python prefix whose library directory is the image's own
// (a link an entry) but for lib-dynload, the host Python's compiled modules, and for
// sitecustomize.py (lib/accel/sitecustomize.py), which makes it answer as the board's. sysconfig reads
// the image's _sysconfigdata (its compilers, flags and EXT_SUFFIX) and names the board's platform;
// the compilers it names are the accelerated ones. Verification, the import check and the smoke
// test stay on the image's own Python.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { packageFile } from '../core/resources.js';
import { resolveInRoot } from '../host/safe-path.js';
import { pythonVersionIn } from '../parse/python-version.js';
import type { Interpreter } from '../session/pythons.js';
import { bindRuntime } from './binds.js';
import { accelRoot, type AccelTree } from './tree.js';

/** A host-architecture Python the build's front end can run under. */
export interface HostPython {
  /** X.Y.Z, the same as the image's. */
  version: string;
  /** Where it comes from: '/' (the host's own) or a toolchain tree. */
  root: string;
  /** Its binary and its compiled modules, as host paths. */
  binary: string;
  dynload: string;
  /** The image's sysconfig data module (_sysconfigdata__linux_TRIPLE). */
  sysconfigData: string;
}

/** `missing`: only a host-architecture Python of the image's version is missing (a Python tree of its release gives one). */
export type PythonDecision = { kind: 'host'; python: HostPython; reason: string } | { kind: 'emulated'; reason: string; missing?: boolean };

/** The interpreter's X.Y.Z, read from its binary; undefined when not found. */
export function pythonPatchVersion(file: string, xy: string): string | undefined {
  try {
    return pythonVersionIn(fs.readFileSync(file), xy);
  } catch {
    return undefined;
  }
}

/**
 * Whether the build's Python can run natively: the image's system Python (X.Y.Z read from its
 * binary), and a host-architecture Python of that very version under one of `roots` (the host's
 * '/', toolchain trees), with the image's sysconfig data for its triple. Otherwise why not.
 */
export function decidePython(rootHost: string, interp: Interpreter | undefined, arch: Arch, roots: readonly string[] = ['/']): PythonDecision {
  const emulated = (why: string): Extract<PythonDecision, { kind: 'emulated' }> => ({ kind: 'emulated', reason: `Python emulated: ${why}` });
  if (!interp) return emulated('the image has no python3');
  if (interp.kind !== 'system') return emulated(`${interp.path} is a ${interp.kind}; --accel full runs only the image's system Python natively`);
  const xy = interp.version;
  const exe = resolveInRoot(rootHost, interp.executable);
  const version = exe.type === 'file' ? pythonPatchVersion(exe.host, xy) : undefined;
  if (!version) return emulated(`cannot read the version of the image's ${interp.executable}`);
  const triple = archTable[arch].triplet;
  const data = [`_sysconfigdata__linux_${triple}`, `_sysconfigdata__${triple}`].find((n) => resolveInRoot(rootHost, `/usr/lib/python${xy}/${n}.py`).type === 'file');
  if (!data) return emulated(`the image has no /usr/lib/python${xy}/_sysconfigdata__linux_${triple}.py to configure a host Python for it`);
  const seen: string[] = [];
  for (const root of roots) {
    const binary = resolveInRoot(root, `/usr/bin/python${xy}`);
    const dynload = resolveInRoot(root, `/usr/lib/python${xy}/lib-dynload`);
    if (binary.type !== 'file') continue;
    const have = pythonPatchVersion(binary.host, xy);
    seen.push(`${have ?? xy} in ${root === '/' ? 'the host' : root}`);
    if (have !== version || dynload.type !== 'dir') continue;
    const where = root === '/' ? 'the host' : `the toolchain tree ${path.basename(root)}`;
    return { kind: 'host', python: { version, root, binary: binary.host, dynload: dynload.host, sysconfigData: data }, reason: `Python ${version} of ${where} runs the front end and backend natively, configured for the image` };
  }
  const found = seen.length ? `found Python ${seen.join(', ')}` : `found no python${xy} on the host`;
  return { ...emulated(`the image's Python is ${version}; ${found}, and a host Python must be the same version (apt-get install python${xy} on a host of the image's release)`), missing: true };
}

/** Where the front end's Python is in the chroot. */
export function pythonInner(xy: string): string {
  return `${accelRoot}/py/bin/python${xy}`;
}

/**
 * The host Python's prefix at /run/imgbuild-accel/py: bin/pythonX.Y is the shim (flags `py`),
 * bin/pythonX.Y.bin the binary, lib/pythonX.Y the image's library but lib-dynload and
 * sitecustomize.py, include and the site-packages directories the image's; py/rt its runtime.
 */
export function bindPython(tree: AccelTree, python: HostPython, o: { xy: string; arch: Arch; machine: string }): string {
  const { xy } = o;
  const lib = `py/lib/python${xy}`;
  for (const d of ['py', 'py/bin', 'py/lib', lib, `${lib}/lib-dynload`, 'py/lib/python3', 'py/local', 'py/local/lib', `py/local/lib/python${xy}`]) fs.mkdirSync(tree.inAccel(d));
  const stdlib = resolveInRoot(tree.rootHost, `/usr/lib/python${xy}`);
  for (const name of fs.readdirSync(stdlib.host)) {
    if (name === 'lib-dynload' || name === 'sitecustomize.py') continue;
    fs.symlinkSync(`/usr/lib/python${xy}/${name}`, tree.inAccel(`${lib}/${name}`));
  }
  fs.copyFileSync(packageFile('lib/accel/sitecustomize.py'), tree.inAccel(`${lib}/sitecustomize.py`));
  tree.binds.push({ source: python.dynload, inner: `${accelRoot}/${lib}/lib-dynload` });
  fs.symlinkSync('/usr/include', tree.inAccel('py/include'));
  fs.symlinkSync('/usr/lib/python3/dist-packages', tree.inAccel('py/lib/python3/dist-packages'));
  fs.symlinkSync(`/usr/local/lib/python${xy}/dist-packages`, tree.inAccel(`py/local/lib/python${xy}/dist-packages`));
  // The host's runtime is bound for the compilers' launcher already; a tree's goes under py/rt.
  if (python.root === '/') fs.symlinkSync('..', tree.inAccel('py/rt'));
  else {
    for (const d of ['py/rt', 'py/rt/lib', 'py/rt/lib2']) fs.mkdirSync(tree.inAccel(d));
    bindRuntime(tree, python.root, 'py/rt/');
  }
  const inner = pythonInner(xy);
  for (const f of [inner, `${inner}.bin`]) fs.closeSync(fs.openSync(tree.inAccel(f.slice(accelRoot.length + 1)), 'w', 0o755));
  tree.binds.push({ source: python.binary, inner: `${inner}.bin` });
  tree.binds.push({ source: tree.nsRoot(`${accelRoot}/shim`), inner });
  tree.map.push(`${inner}\t${inner}.bin\tpy`);
  const env = {
    _PYTHON_SYSCONFIGDATA_NAME: python.sysconfigData,
    _PYTHON_HOST_PLATFORM: `linux-${o.machine}`,
    IMGBUILD_TARGET_MACHINE: o.machine,
    IMGBUILD_TARGET_TRIPLE: archTable[o.arch].triplet,
    IMGBUILD_TARGET_BITS: archTable[o.arch].elfClass === 1 ? '32' : '64',
    // protobuf's own pure-Python implementation, not its compiled one (the board's, which cannot load here).
    PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION: 'python',
  };
  fs.writeFileSync(tree.inAccel('py/env'), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
  return inner;
}
