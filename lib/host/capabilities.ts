// What this host's kernel and tools can do, probed (not assumed) and cached per boot.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { withDir } from 'tmp-promise';
import type { Context } from '../core/context.js';
import { hostUndoer } from './undoers.js';
import { fileId } from '../core/identity.js';
import { waitFor } from '../core/wait.js';
import { attachLoop, partitionNodes } from './loop.js';
import { openTransaction } from '../undo/open.js';
import type { TableType } from '../parse/partitions.js';

export interface Capabilities {
  /** False when partition scanning was not probed (--no-probe without a cached answer). */
  partscanProbed?: false;
  bootId: string;
  kernel: string;
  root: boolean;
  deviceMapper: boolean;
  filesystems: string[];
  partscan: Record<TableType, boolean>;
  tools: Record<string, string | undefined>;
}

const toolNames = ['losetup', 'partx', 'kpartx', 'dmsetup', 'sfdisk', 'unshare', 'nsenter', 'flock', 'mount', 'umount', 'e2fsck', 'resize2fs', 'mmdebstrap', 'git', 'mkfs.ext4', 'mkfs.vfat', 'mcopy'];

export function which(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(':').concat(['/usr/sbin', '/sbin'])) {
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

export function kernelFilesystems(): string[] {
  try {
    return fs
      .readFileSync('/proc/filesystems', 'utf8')
      .split('\n')
      .map((l) => l.trim().split(/\s+/).pop() ?? '')
      .filter(Boolean);
  } catch {
    return [];
  }
}

export function hasDeviceMapper(): boolean {
  try {
    return /\bdevice-mapper\b/.test(fs.readFileSync('/proc/misc', 'utf8')) || fs.existsSync('/sys/module/dm_mod');
  } catch {
    return false;
  }
}

function bootId(): string {
  try {
    return fs.readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return '';
  }
}

// Does `losetup --partscan` make partition nodes for this table type? Tried on a tiny image,
// through the same journaled loop change as a session, so a kill -9 here is recovered too.
async function probePartscan(ctx: Context, dir: string, type: TableType): Promise<boolean> {
  const file = path.join(dir, `probe-${type}.img`);
  fs.writeFileSync(file, '');
  fs.truncateSync(file, 4 * 1024 * 1024);
  const script = type === 'gpt' ? 'label: gpt\nstart=2048, size=2048\n' : 'label: dos\nstart=2048, size=2048, type=83\n';
  await ctx.run('sfdisk', ['--quiet', file], { input: script, quiet: true });
  const t = openTransaction(ctx, { verb: 'probe', undoer: hostUndoer(ctx) });
  try {
    const { device } = await attachLoop(t.tx, { image: fileId(file), imagePath: file, readOnly: true, partscan: true });
    return await waitFor(() => partitionNodes(device).length > 0, 500);
  } catch {
    return false;
  } finally {
    // A loop that would not detach stays in the journal for `imgbuild recover`; the probe's answer stands.
    await t.close().catch(() => undefined);
  }
}

/**
 * What this host can do, cached per boot. `fresh` probes again; `probe: false` never attaches a
 * loop device: without a cached answer, partition scanning is left unknown (partscanProbed false).
 */
export async function probeCapabilities(ctx: Context, options: { fresh?: boolean; probe?: boolean } = {}): Promise<Capabilities> {
  const cacheFile = path.join(ctx.stateDir, 'capabilities.json');
  const id = bootId();
  if (!options.fresh) {
    try {
      const cached = JSON.parse(fs.readFileSync(cacheFile, 'utf8')) as Capabilities;
      if (cached.bootId === id && cached.kernel === os.release()) return cached;
    } catch {
      // probe
    }
  }
  const tools: Record<string, string | undefined> = {};
  for (const t of toolNames) tools[t] = which(t);
  const root = process.getuid?.() === 0;
  const partscan: Record<TableType, boolean> = { mbr: false, gpt: false };
  const probe = options.probe !== false;
  if (probe && root && tools.losetup && tools.sfdisk) {
    fs.mkdirSync(ctx.stateDir, { recursive: true, mode: 0o700 });
    await withDir(
      async ({ path: dir }) => {
        partscan.mbr = await probePartscan(ctx, dir, 'mbr');
        partscan.gpt = await probePartscan(ctx, dir, 'gpt');
      },
      { tmpdir: ctx.stateDir, prefix: 'probe-', unsafeCleanup: true },
    );
  }
  const caps: Capabilities = { bootId: id, kernel: os.release(), root, deviceMapper: hasDeviceMapper(), filesystems: kernelFilesystems(), partscan, tools, ...(probe ? {} : { partscanProbed: false }) };
  if (root && probe) fs.writeFileSync(cacheFile, JSON.stringify(caps, null, 2));
  return caps;
}
