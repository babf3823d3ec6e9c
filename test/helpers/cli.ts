// Running the real CLI as a subprocess, and the sample images it works on.
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { execa, execaSync, type ResultPromise } from 'execa';
import { hashFile } from '../../lib/core/hash.js';
import { safeRemoveTree } from '../../lib/host/safe-remove.js';
import { foreignRoot, snapshot, type HostSnapshot } from './host.js';

export const cliPath = path.resolve('dist/imgbuild.mjs');

export function imgbuild(args: string[], options: { input?: string; env?: Record<string, string>; timeoutMs?: number } = {}) {
  return execa('node', [cliPath, ...args], { reject: false, all: true, input: options.input, env: options.env, timeout: options.timeoutMs ?? 10 * 60_000 });
}

/**
 * imgbuild with a tmpfs of `size` at `dir`, mounted in a mount namespace of its own: the mount is
 * never on the host, and it goes with the last process of the run, however the run (or the test
 * process) ends. `left()` lists what was in the tmpfs when imgbuild ended. `detached`: the run is
 * a process group of its own, for a test that kills it.
 */
export function imgbuildOnTmpfs(dir: string, size: string, args: string[], o: { detached?: boolean } = {}): { run: ResultPromise<{ reject: false; all: true }>; left(): string[] } {
  const list = path.join(tmpdir('imgbuild-tmpfs-list-'), 'left');
  const script = 'size=$1 dir=$2 list=$3; shift 3; mount -t tmpfs -o "size=$size" imgbuild-test-tmpfs "$dir" || exit 125; "$@"; rc=$?; ls -A "$dir" > "$list"; exit $rc';
  const run = execa('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', script, 'sh', size, dir, list, 'node', cliPath, ...args], { reject: false, all: true, detached: o.detached ?? false, timeout: 10 * 60_000 });
  return { run, left: () => (fs.existsSync(list) ? fs.readFileSync(list, 'utf8').split('\n').filter(Boolean) : []) };
}

export function spawnImgbuild(args: string[], env: Record<string, string> = {}): ResultPromise<{ reject: false; all: true }> {
  return execa('node', [cliPath, ...args], { reject: false, all: true, env });
}

/** The cached sample image for an arch (built by scripts/test.sh before the integration tests). */
export async function sample(arch: 'aarch64' | 'armhf', table: 'mbr' | 'gpt' = 'mbr'): Promise<string> {
  const r = await imgbuild(['sample', '--arch', arch, '--table', table]);
  if (r.exitCode !== 0) throw new Error(`sample image: ${r.all}`);
  return r.stdout.trim();
}

/** The same, synchronously: AVA wants tests declared synchronously. Another release with `suite`. */
export function sampleSync(arch: 'aarch64' | 'armhf', table: 'mbr' | 'gpt' = 'mbr', suite?: string): string {
  const r = execaSync('node', [cliPath, 'sample', '--arch', arch, '--table', table, ...(suite ? ['--suite', suite] : [])], { reject: false, all: true });
  if (r.exitCode !== 0) throw new Error(`sample image: ${r.all}`);
  return String(r.stdout).trim();
}

/** Why each attach strategy cannot run on this host (from `imgbuild doctor --json`), or undefined. */
export function attachSupport(table: 'mbr' | 'gpt' = 'mbr'): Record<string, string | undefined> {
  const r = execaSync('node', [cliPath, 'doctor', '--json'], { reject: false });
  const checks = JSON.parse(String(r.stdout)) as { name: string; ok: boolean; detail: string }[];
  const find = (prefix: string) => checks.find((c) => c.name.startsWith(prefix));
  const dm = find('device-mapper');
  const scan = find('loop partition scanning');
  const partx = find('partx');
  return {
    kpartx: dm?.ok ? undefined : dm?.detail,
    partscan: scan && new RegExp(`${table === 'mbr' ? 'MBR' : 'GPT'}: yes`).test(scan.detail) ? undefined : scan?.detail,
    partx: partx?.ok ? undefined : partx?.detail,
    offset: undefined,
  };
}

/** A private sparse copy of an image, for tests that write or break it. */
export function copyImage(src: string, dir: string, name = 'copy.img'): string {
  const dst = path.join(dir, name);
  fs.copyFileSync(src, dst, fs.constants.COPYFILE_FICLONE);
  return dst;
}

export async function copySparse(src: string, dst: string): Promise<string> {
  await execa('cp', ['--sparse=always', src, dst]);
  return dst;
}

/** sha256 of a file: the library's own streaming hash. */
export const sha256 = hashFile;

const made: string[] = [];

/**
 * A fresh directory under /var/tmp, removed when the test file's process ends, whether its tests
 * passed or not (never across a mount: safeRemoveTree refuses, and the hostUnchanged snapshot
 * reports the mount).
 */
export function tmpdir(prefix = 'imgbuild-test-'): string {
  fs.mkdirSync('/var/tmp', { recursive: true });
  const dir = fs.mkdtempSync(path.join('/var/tmp', prefix));
  if (made.length === 0) process.once('exit', removeMade);
  made.push(dir);
  return dir;
}

function removeMade(): void {
  for (const dir of made.reverse()) {
    try {
      safeRemoveTree(dir);
    } catch (error) {
      process.stderr.write(`test: left ${dir}: ${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
}

/** Wait until a process whose command line matches `re` runs in an image root (chroot or pivot_root); returns its pid. */
export async function waitForChrooted(re: RegExp, ms = 60_000): Promise<number> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
      try {
        if (!foreignRoot(pid)) continue;
        const cmd = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
        if (re.test(cmd)) return Number(pid);
      } catch {
        // gone
      }
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`no chrooted process matching ${re}`);
}

/** e2fsck -fn of the image's root partition (the last Linux one) through a read-only offset loop. */
export async function fsckRoot(image: string): Promise<number> {
  const table = JSON.parse((await execa('sfdisk', ['--json', image])).stdout).partitiontable;
  const root = table.partitions.filter((p: { type: string }) => ['83', '0fc63daf-8483-4772-8e3d-3d69d8477de4'].includes(p.type.toLowerCase())).at(-1);
  const loop = (await execa('losetup', ['--find', '--show', '--read-only', '--offset', String(root.start * 512), '--sizelimit', String(root.size * 512), image])).stdout.trim();
  try {
    const r = await execa('e2fsck', ['-fn', loop], { reject: false, all: true });
    if (r.exitCode !== 0) console.log(r.all);
    return r.exitCode ?? -1;
  } finally {
    await execa('losetup', ['--detach', loop]);
  }
}

export interface HostContext {
  before: HostSnapshot;
}

/** beforeEach/afterEach pair: the host must look the same after every test. */
export function hostUnchanged(test: {
  beforeEach: (fn: (t: ExecutionContext<HostContext>) => Promise<void>) => void;
  afterEach: { always: (fn: (t: ExecutionContext<HostContext>) => Promise<void>) => void };
}): void {
  test.beforeEach(async (t) => {
    t.context.before = await snapshot();
  });
  test.afterEach.always(async (t) => {
    const after = await snapshot();
    t.deepEqual(after, t.context.before, 'the host changed: something was left behind');
  });
}
