// What runs the accelerated compiler drivers (the host's ccache and/or distcc), the files the
// shim reads (launcher, cflags, map, env) and the guard that keeps dpkg off the binds.
import fs from 'node:fs';
import path from 'node:path';
import type { Arch } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import { type Accelerated, crossFullVersion } from './decide.js';
import { distccEnv, parseDistccHost, probeDistccHosts } from './distcc.js';
import { accelRoot, type AccelTree } from './tree.js';

/** Add the host's ccache and/or distcc as the drivers' launcher (to `env` their settings); the launcher's path and the ccache directory. */
export async function addLauncher(ctx: Context, arch: Arch, tree: AccelTree, decision: Accelerated, env: Record<string, string>, shim: string): Promise<{ launcher: string; ccacheDir?: string }> {
  let ccacheDir: string | undefined;
  let launcher = '';
  const ccacheBin = decision.ccache ? findProgram('ccache') : undefined;
  const distccBin = decision.kind === 'distcc' ? findProgram('distcc') : undefined;
  if (decision.kind === 'distcc' && !distccBin) throw new PreconditionError('--accel distcc: the host has no distcc', 'apt-get install distcc');
  if (ccacheBin) {
    const { image, host } = decision;
    ccacheDir = path.join(ctx.cacheDir, 'ccache', `${arch}-gcc${host.major}-on-${image.triple}-${image.dir}`);
    fs.mkdirSync(ccacheDir, { recursive: true });
    fs.mkdirSync(tree.inAccel('ccache'));
    tree.binds.push({ source: ccacheDir, inner: `${accelRoot}/ccache`, rw: true });
    launcher = tree.tool(ccacheBin);
    Object.assign(env, {
      CCACHE_DIR: `${accelRoot}/ccache`,
      CCACHE_BASEDIR: '/workspace',
      CCACHE_COMPILERCHECK: `string:${host.triple}-gcc-${host.major}:${crossFullVersion(host)}:${image.triple}/${image.dir}`,
      CCACHE_SLOPPINESS: 'include_file_mtime,include_file_ctime',
      CCACHE_NOHASHDIR: '1',
    });
  }
  if (distccBin) {
    await addDistcc(ctx, arch, tree, decision, env, { distccBin, shim });
    if (ccacheBin) env.CCACHE_PREFIX = `${accelRoot}/bin/distcc`;
    else launcher = `${accelRoot}/bin/distcc`;
  }
  return { launcher, ...(ccacheDir ? { ccacheDir } : {}) };
}

async function addDistcc(ctx: Context, arch: Arch, tree: AccelTree, decision: Accelerated, env: Record<string, string>, o: { distccBin: string; shim: string }): Promise<void> {
  const distcc = tree.tool(o.distccBin);
  // distcc is handed each compiler by its host driver's bare name (TRIPLE-gcc-N): what distccd
  // servers run and whitelist. In the chroot, bin/NAME leads to the image's driver (the shim),
  // and the bin/distcc shim copy (static, so ccache or the driver shim runs it as it is) puts
  // bin first in PATH and rewrites the compiler argument.
  fs.copyFileSync(o.shim, tree.inAccel('bin/distcc'));
  fs.chmodSync(tree.inAccel('bin/distcc'), 0o755);
  const drivers = new Map<string, string>();
  for (const line of tree.map) {
    const [inner, program, flags] = line.split('\t');
    if (flags === 'cc' && inner && program && !drivers.has(path.posix.basename(program))) drivers.set(path.posix.basename(program), inner);
  }
  for (const [name, inner] of drivers) fs.symlinkSync(inner, tree.inAccel(`bin/${name}`));
  tree.map.push(`${accelRoot}/bin/distcc\t${distcc}\tdistcc`);
  fs.mkdirSync(tree.inAccel('distcc'));
  Object.assign(env, distccEnv(decision.distccHosts, `${accelRoot}/distcc`));
  const t = decision.host.triple;
  const cxx = `${t}-g++-${decision.host.major}`;
  await probeDistccHosts(ctx, decision.distccHosts.map(parseDistccHost), arch, { c: `${t}-gcc-${decision.host.major}`, ...(drivers.has(cxx) ? { cxx } : {}) });
}

/** The files the shim reads: the launcher, the target flags, the map and the environment. */
export function writeShimConfig(tree: AccelTree, decision: Accelerated, launcher: string, env: Record<string, string>): void {
  fs.writeFileSync(tree.inAccel('launcher'), launcher ? `${launcher}\n` : '');
  fs.writeFileSync(tree.inAccel('cflags'), decision.targetFlags.map((f) => `${f}\n`).join(''));
  fs.writeFileSync(tree.inAccel('map'), `${tree.map.join('\n')}\n`);
  fs.writeFileSync(tree.inAccel('env'), Object.entries(env).map(([k, val]) => `${k}=${val}\n`).join(''));
}

/**
 * dpkg cannot replace a file that is a mount point, and must never write through one: while the
 * binds are up, a script bound over /usr/bin/dpkg refuses with a message instead.
 */
export function guardDpkg(tree: AccelTree): void {
  fs.writeFileSync(tree.inAccel('dpkg-guard'), '#!/bin/sh\necho "imgbuild: dpkg is disabled while the host compiler is bound into this chroot (--accel); run apt/dpkg in a session with --accel none" >&2\nexit 1\n', { mode: 0o755 });
  const dpkg = resolveInRoot(tree.rootHost, '/usr/bin/dpkg');
  if (dpkg.type === 'file') tree.binds.push({ source: tree.nsRoot(`${accelRoot}/dpkg-guard`), inner: dpkg.inner });
}

function findProgram(name: string): string | undefined {
  for (const d of ['/usr/bin', '/usr/local/bin', '/bin']) {
    const p = path.join(d, name);
    if (fs.existsSync(p)) return fs.realpathSync(p);
  }
  return undefined;
}
