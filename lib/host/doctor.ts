// `imgbuild doctor`: what this host can do, each missing item with its fix.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import { findUsableEntry, hostBinfmtDir, readEntries } from './binfmt.js';
import { human } from '../core/units.js';
import { listCache } from './cache-dir.js';
import { ensureEnter } from './enter.js';
import { type Capabilities, probeCapabilities, which } from './capabilities.js';
import { probeMemoryCgroup } from './cgroup.js';
import type { Context } from '../core/context.js';
import { errorMessage } from '../core/errors.js';
import { listJournals, sessionAlive } from '../undo/journal.js';
import { Namespace } from './namespace.js';

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  fix?: string;
  /** Missing but not needed for the default path on this host. */
  optional?: boolean;
  /** Listed under its own heading ('cache': the parts of the cache directory). */
  section?: 'cache';
}

export async function doctor(ctx: Context, options: { probe?: boolean } = {}): Promise<Check[]> {
  const probe = options.probe !== false;
  const root = process.getuid?.() === 0;
  if (probe && root) ctx.emit({ kind: 'notice', message: 'doctor probes the host: two small loop devices (partition scanning), a private namespace (binfmt_misc, unshare); each undone at once (--no-probe reads only)' });
  const checks: Check[] = [{ name: 'root', ok: root, detail: root ? 'running as root' : 'not root', fix: 'run imgbuild with sudo' }];
  const caps = await probeCapabilities(ctx, probe ? { fresh: true } : { probe: false });
  checks.push(...(await emulationChecks(ctx, caps, root && probe)));
  checks.push(...kernelChecks(caps));
  checks.push(...memoryChecks(ctx));
  checks.push(probe ? await unshareCheck(ctx, root) : { name: 'unshare (mount + PID namespaces)', ok: false, optional: true, detail: 'not probed (--no-probe)' });
  checks.push(await enterCheck(ctx, probe));
  checks.push(...toolChecks());
  checks.push({ name: 'state directory', ok: true, detail: ctx.stateDir });
  checks.push({ name: 'cache directory', ok: true, detail: `${ctx.cacheDir}${fs.existsSync(ctx.cacheDir) ? '' : ' (not created yet)'}` });
  checks.push(...cacheChecks(ctx.cacheDir));
  return checks;
}

// `open`: a private namespace may be opened to read binfmt_misc (--no-probe: only the host's mount is read).
async function emulationChecks(ctx: Context, caps: Capabilities, open: boolean): Promise<Check[]> {
  const hostMounted = fs.existsSync(path.join(hostBinfmtDir, 'register'));
  const kernelBinfmt = caps.filesystems.includes('binfmt_misc');
  const checks: Check[] = [{
    name: 'binfmt_misc',
    ok: kernelBinfmt,
    detail: !kernelBinfmt ? 'the kernel has no binfmt_misc' : hostMounted ? `mounted at ${hostBinfmtDir}` : `not mounted on the host; imgbuild mounts it in its private namespace`,
    fix: 'load the module: modprobe binfmt_misc',
  }];
  let dir: string | undefined;
  let ns: Namespace | undefined;
  try {
    if (kernelBinfmt) {
      if (hostMounted) dir = hostBinfmtDir;
      else if (open) {
        ns = await Namespace.open(ctx);
        dir = await ns.binfmtDir();
      }
    }
    for (const arch of ['aarch64', 'armhf'] as Arch[]) checks.push(qemuCheck(arch, dir));
    if (dir) checks.push(...staleBinfmtChecks(ctx, dir));
  } catch (error) {
    checks.push({ name: 'binfmt probe', ok: false, detail: errorMessage(error) });
  } finally {
    await ns?.close();
  }
  return checks;
}

function qemuCheck(arch: Arch, binfmtDir: string | undefined): Check {
  if (!needsEmulation(arch)) return { name: `qemu-user ${arch}`, ok: true, detail: 'runs natively on this host' };
  const qemu = ['/usr/bin', '/usr/local/bin'].map((d) => path.join(d, `qemu-${archTable[arch].qemu}-static`)).find((p) => fs.existsSync(p));
  let entry = 'binfmt not readable';
  if (binfmtDir) {
    const u = findUsableEntry(binfmtDir, arch);
    entry = u.entry ? `host entry ${u.entry.name} has the F flag: reused` : `${u.reason}: imgbuild registers its own entry per session`;
  }
  return { name: `qemu-user ${arch}`, ok: !!qemu, detail: qemu ? `${qemu}; ${entry}` : `no qemu-${archTable[arch].qemu}-static`, fix: 'apt-get install qemu-user-static' };
}

function staleBinfmtChecks(ctx: Context, binfmtDir: string): Check[] {
  const live = new Set(
    listJournals(ctx.stateDir)
      .filter(sessionAlive)
      .flatMap((j) => j.pending.map((p) => (p.change.kind === 'binfmt' ? p.change.name : ''))),
  );
  const ours = readEntries(binfmtDir).filter((e) => e.name.startsWith('imgbuild-') && !live.has(e.name));
  return ours.length > 0 ? [{ name: 'stale binfmt entries', ok: false, detail: ours.map((e) => e.name).join(', '), fix: 'imgbuild recover' }] : [];
}

function kernelChecks(caps: Capabilities): Check[] {
  return [
    { name: 'device-mapper (kpartx)', ok: caps.deviceMapper && !!caps.tools.kpartx, optional: true, detail: !caps.deviceMapper ? 'the kernel has no device-mapper: --attach kpartx unavailable' : caps.tools.kpartx ? 'kpartx usable' : 'kpartx not installed', fix: caps.deviceMapper ? 'apt-get install kpartx' : 'load dm-mod (modprobe dm-mod) or use another --attach strategy' },
    caps.partscanProbed === false
      ? { name: 'loop partition scanning (losetup -P)', ok: false, optional: true, detail: 'not probed (--no-probe, and no answer cached since boot)' }
      : { name: 'loop partition scanning (losetup -P)', ok: caps.partscan.mbr && caps.partscan.gpt, optional: true, detail: `MBR: ${caps.partscan.mbr ? 'yes' : 'no'}, GPT: ${caps.partscan.gpt ? 'yes' : 'no'}${!caps.partscan.mbr ? ' (the kernel lacks MSDOS partition support): --attach partscan unavailable for MBR' : ''}`, fix: 'use --attach partx or offset (auto does)' },
    { name: 'partx', ok: !!caps.tools.partx, optional: true, detail: caps.tools.partx ?? 'not installed', fix: 'apt-get install util-linux' },
    { name: 'vfat', ok: caps.filesystems.includes('vfat'), optional: true, detail: caps.filesystems.includes('vfat') ? 'boot partitions are mounted' : 'the kernel has no vfat: boot partitions are not mounted (warned per session)', fix: 'modprobe vfat' },
    { name: 'overlayfs', ok: caps.filesystems.includes('overlay'), detail: caps.filesystems.includes('overlay') ? 'read-only image + throwaway layer available' : 'no overlayfs: only --rw sessions work', fix: 'modprobe overlay' },
  ];
}

function memoryChecks(ctx: Context): Check[] {
  const memory = probeMemoryCgroup();
  const checks: Check[] = [{
    name: 'memory limit (cgroup)',
    ok: memory.ok,
    optional: true,
    detail: memory.ok ? `cgroup v${memory.version}: builds get a memory cgroup of their own under ${memory.parent}` : `unavailable: ${memory.reason}; an out-of-memory build is met by the host's OOM killer`,
    fix: memory.ok ? undefined : memory.fix,
  }];
  if (!memory.ok) return checks;
  const journals = listJournals(ctx.stateDir);
  const cgroupsOf = (js: typeof journals) => new Set(js.flatMap((j) => j.pending.flatMap((p) => (p.change.kind === 'cgroup' ? [p.change.path] : []))));
  const live = cgroupsOf(journals.filter(sessionAlive));
  const journaled = cgroupsOf(journals);
  const stale = fs
    .readdirSync(memory.parent)
    .filter((n) => n.startsWith('imgbuild-'))
    .map((n) => path.join(memory.parent, n))
    .filter((d) => !live.has(d));
  const recoverable = stale.filter((d) => journaled.has(d));
  const orphans = stale.filter((d) => !journaled.has(d));
  if (recoverable.length > 0) checks.push({ name: 'stale memory cgroups', ok: false, detail: recoverable.join(', '), fix: 'imgbuild recover' });
  // No journal names them (the state directory was cleared): only a person can tell they are imgbuild's.
  if (orphans.length > 0) checks.push({ name: 'memory cgroups without a journal', ok: false, detail: orphans.join(', '), fix: 'if nothing of yours runs in them (cat DIR/cgroup.procs), rmdir them' });
  return checks;
}

async function unshareCheck(ctx: Context, root: boolean): Promise<Check> {
  const unshare = root ? await ctx.run('unshare', ['--mount', '--pid', '--fork', '--', 'true'], { allowFailure: true, quiet: true }) : undefined;
  return { name: 'unshare (mount + PID namespaces)', ok: unshare?.exitCode === 0, detail: unshare?.exitCode === 0 ? 'works: sessions die with imgbuild, even after kill -9' : 'does not work', fix: 'a kernel with namespaces; not inside an unprivileged container' };
}

// Every command in an image enters it through a static program built with the host's cc.
async function enterCheck(ctx: Context, probe: boolean): Promise<Check> {
  const name = 'the box (chroot entry, lib/host/enter.c)';
  if (!probe) return { name, ok: !!which('cc'), optional: true, detail: which('cc') ? 'not built (--no-probe); the host has cc' : 'not probed (--no-probe); no cc on the host', fix: 'install gcc and libc6-dev (scripts/setup-host.sh does)' };
  let enter: string;
  try {
    enter = await ensureEnter(ctx);
  } catch (error) {
    return { name, ok: false, detail: errorMessage(error), fix: 'install gcc and libc6-dev (scripts/setup-host.sh does)' };
  }
  // Into an empty directory for real: everything up to the exec works (127: nothing to run there).
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-enter-probe-'));
  fs.mkdirSync(path.join(dir, 'proc'));
  try {
    const r = await ctx.run(enter, [dir, '/', '--', '/imgbuild-probe'], { allowFailure: true, quiet: true });
    if (r.exitCode === 127) return { name, ok: true, detail: `${enter}: pivot_root, own mount/PID/UTS/IPC namespaces, reduced capabilities, no_new_privs` };
    return { name, ok: false, detail: `${enter} cannot set the box up here: ${r.all.trim().split('\n').at(-1)}`, fix: 'imgbuild needs a host whose / is a real filesystem (not an initramfs) and mount namespaces (not an unprivileged container)' };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

function toolChecks(): Check[] {
  return ['losetup', 'sfdisk', 'nsenter', 'flock', 'mmdebstrap', 'git', 'mkfs.vfat', 'mcopy', 'e2fsck', 'resize2fs'].map((t) => {
    const p = which(t);
    return { name: t, ok: !!p, optional: ['mmdebstrap', 'mkfs.vfat', 'mcopy', 'git'].includes(t), detail: p ?? 'not installed', fix: 'scripts/setup-host.sh installs everything' };
  });
}

/** Each part of the cache directory with its path and size (`imgbuild cache PART --clear` empties one). */
export function cacheChecks(cacheDir: string): Check[] {
  return listCache(cacheDir).map((p) => ({ name: `cache ${p.name}`, ok: true, section: 'cache', detail: `${human(p.bytes)} in ${p.path}: ${p.describe}${p.entries?.length ? ` (${p.entries.join(', ')})` : ''}` }));
}
