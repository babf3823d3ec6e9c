// Sample SD-card images for the demo and the tests, built once per machine and cached under
// the cache directory, keyed by arch, table type and the package list.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { withDir } from 'tmp-promise';
import { chooseSampleSources, hostAptSources, hostOsId, hostSuite, type SourcesChoice, sourcesFiles, sourcesFor } from './sample-sources.js';

export { hostAptSources, hostSuite, sourcesFor };
import { sampleBootFiles, sampleLayout, samplePackages } from '../../images/samples.js';
import { type Arch, archTable, needsEmulation } from '../core/arch.js';
import { enableEmulation, hostBinfmtDir } from '../host/binfmt.js';
import { makeUndoer } from '../host/undoers.js';
import type { Context } from '../core/context.js';
import { CommandError, UsageError } from '../core/errors.js';
import { stage } from '../core/events.js';
import { Namespace } from '../host/namespace.js';
import type { TableType } from '../parse/partitions.js';
import { safeRemoveTree } from '../host/safe-remove.js';
import { openTransaction } from '../undo/open.js';
import { MiB } from '../core/units.js';

export interface SampleOptions {
  arch: Arch;
  table: TableType;
  /** The Debian release of the userland (bullseye, bookworm, trixie); the host's by default. */
  suite?: string;
  /** An apt archive that carries the image's architecture (an Ubuntu host's own does not). */
  mirror?: string;
  /** Rebuild even if cached. */
  fresh?: boolean;
}

export function sampleKey(arch: Arch, suite: string): string {
  const h = crypto.createHash('sha256').update(JSON.stringify({ arch, suite, samplePackages, v: 1 })).digest('hex').slice(0, 12);
  return `${arch}-${suite}-${h}`;
}

export function samplePath(ctx: Context, arch: Arch, table: TableType, suite = hostSuite()): string {
  return path.join(ctx.cacheDir, 'samples', `${sampleKey(arch, suite)}-${table}.img`);
}

/** Build (or reuse) a sample image; returns its path. */
export async function buildSample(ctx: Context, o: SampleOptions): Promise<string> {
  const suite = o.suite ?? hostSuite();
  if (!/^[a-z][a-z0-9-]*$/.test(suite)) throw new UsageError(`--suite ${suite} is not a release codename`, 'e.g. --suite bullseye, bookworm or trixie');
  // Decided before anything changes on the host: an Ubuntu host without --mirror stops here.
  const choice = chooseSampleSources({ hostId: hostOsId(), hostSuite: hostSuite(), suite, arch: o.arch, ...(o.mirror ? { mirror: o.mirror } : {}) });
  const key = sampleKey(o.arch, suite);
  const dir = path.join(ctx.cacheDir, 'samples');
  const image = path.join(dir, `${key}-${o.table}.img`);
  if (!o.fresh && fs.existsSync(image)) {
    ctx.emit({ kind: 'info', message: `sample image cached: ${image}` });
    return image;
  }
  fs.mkdirSync(dir, { recursive: true });
  const tree = path.join(dir, `${key}.tree`);
  if (o.fresh || !fs.existsSync(path.join(tree, 'etc', 'os-release'))) {
    await stage(ctx.emit, `bootstrap ${o.arch} ${suite} tree (mmdebstrap, a few minutes)`, () => bootstrap(ctx, o.arch, suite, tree, choice));
  }
  await stage(ctx.emit, `make ${o.table} image`, () => makeImage(ctx, tree, image, o.table));
  return image;
}

// A mirror mid-sync stays inconsistent for a while: back off instead of retrying at once.
const retryDelays = [10, 30, 60, 90, 120];
const transient = /Mirror sync in progress|Hash Sum mismatch|Temporary failure|Connection (timed out|reset|failed)|Could not connect|Undetermined Error|File has unexpected size/i;

async function bootstrap(ctx: Context, arch: Arch, suite: string, tree: string, choice: SourcesChoice): Promise<void> {
  const tmp = `${tree}.tmp-${process.pid}`;
  let ns: Namespace | undefined;
  const t = openTransaction(ctx, { verb: 'sample', undoer: makeUndoer({ run: ctx.run, binfmtDir: async () => (ns ? ns.binfmtDir() : hostBinfmtDir), nsPids: () => (ns ? [ns.pid] : []) }) });
  const { tx, journal } = t;
  let primary: unknown;
  try {
    // mmdebstrap runs in a private namespace, so the mounts it makes in the tree die with it.
    const held = await Namespace.open(ctx, { journal });
    ns = held;
    tx.defer('end the bootstrap namespace', () => held.close());
    if (needsEmulation(arch)) await enableEmulation(tx, await held.binfmtDir(), arch, journal.id);
    let dropped: string | undefined;
    let srcDir: string | undefined;
    const scratch = () => (srcDir ??= fs.mkdtempSync(path.join(path.dirname(tmp), 'sources-')));
    try {
      let sources = sourcesFiles(choice, { suite, hostSuite: hostSuite(), hostFiles: hostAptSources, hostMirrors: () => sourcesFor(suite, hostAptSources(), hostSuite()), dir: scratch });
      for (let attempt = 1; ; attempt++) {
        safeRemoveTree(tmp, [held.pid]);
        const args = [
          '--mode=root',
          `--arch=${archTable[arch].debian}`,
          '--variant=minbase',
          `--include=${samplePackages.join(',')}`,
          '--aptopt=Acquire::Retries "3"',
          // Index files fetched by hash cannot be caught half-synced on the mirror.
          ...(attempt > 1 ? ['--aptopt=Acquire::By-Hash "force"'] : []),
          suite,
          tmp,
          ...sources,
        ];
        const log = `${tree}.log`;
        fs.writeFileSync(log, `# attempt ${attempt}: mmdebstrap ${args.join(' ')}\n`);
        const r = await held.exec('mmdebstrap', args, { allowFailure: true, pidns: true, logFile: log });
        if (r.exitCode === 0) break;
        if (attempt <= retryDelays.length && transient.test(r.all)) {
          const delay = retryDelays[attempt - 1]!;
          const failedSuite = /Failed to fetch \S+\/dists\/([^/\s]+)\//.exec(r.all)?.[1];
          // A suite that stays half-synced (seen: bookworm-security for armhf) is left out of a
          // sample image after two tries, with a warning; the main suite never is.
          if (attempt >= 2 && failedSuite && failedSuite !== suite && !dropped) {
            dropped = failedSuite;
            sources = withoutSuite(sources, failedSuite, scratch());
            ctx.emit({ kind: 'warn', message: `the mirror keeps failing for ${failedSuite}; building the sample image without it` });
          } else {
            ctx.emit({ kind: 'warn', message: `mmdebstrap hit a transient mirror error (${/Mirror sync in progress|Hash Sum mismatch/i.exec(r.all)?.[0] ?? 'network'}), retrying in ${delay}s (${attempt}/${retryDelays.length})` });
            await new Promise((resolve) => setTimeout(resolve, delay * 1000));
          }
          continue;
        }
        if (attempt === 1) {
          // Seen once here: dpkg failing under emulation in a first bootstrap and not in the next.
          ctx.emit({ kind: 'warn', message: `mmdebstrap failed (exit ${r.exitCode}); trying once more (log: ${tree}.log)` });
          continue;
        }
        throw new CommandError(`mmdebstrap ${args.join(' ')} (full log: ${tree}.log)`, r.exitCode, r.all);
      }
    } finally {
      if (srcDir) fs.rmSync(srcDir, { recursive: true, force: true });
    }
    const id = '/etc/hostname';
    fs.writeFileSync(path.join(tmp, id), `${sampleLayout.hostname}\n`);
    safeRemoveTree(tree, [held.pid]);
    fs.renameSync(tmp, tree);
  } catch (error) {
    primary = error;
    throw error;
  } finally {
    try {
      await t.close(primary);
    } finally {
      safeRemoveTree(tmp);
    }
  }
}

/** Copies of the host's source files without one suite (deb822 Suites: fields and one-line entries). */
export function withoutSuite(files: string[], suite: string, dir: string): string[] {
  return files.map((file, i) => {
    const text = fs.readFileSync(file, 'utf8');
    const out = file.endsWith('.sources')
      ? text
          .split(/\n\s*\n/)
          .map((stanza) => stanza.replace(/^(Suites:)(.*)$/m, (_, k: string, v: string) => `${k} ${v.trim().split(/\s+/).filter((x) => x !== suite).join(' ')}`))
          .filter((stanza) => !/^Suites:\s*$/m.test(stanza))
          .join('\n\n')
      : text
          .split('\n')
          .filter((l) => !new RegExp(`^\\s*deb\\S*\\s+(\\[[^\\]]*\\]\\s+)?\\S+\\s+${suite.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\s`).test(l))
          .join('\n');
    const copy = path.join(dir, `sources-${i}${path.extname(file)}`);
    fs.writeFileSync(copy, out);
    return copy;
  });
}

async function treeSize(ctx: Context, tree: string): Promise<number> {
  const r = await ctx.run('du', ['-sb', '--one-file-system', tree], { quiet: true });
  return Number(r.stdout.split(/\s+/)[0]);
}

async function makeImage(ctx: Context, tree: string, image: string, table: TableType): Promise<void> {
  const { bootStart, bootSize, rootSlack } = sampleLayout;
  const rootStart = bootStart + bootSize;
  const rootSize = Math.ceil(((await treeSize(ctx, tree)) * 1.15 + rootSlack) / MiB) * MiB;
  const total = rootStart + rootSize + (table === 'gpt' ? MiB : 0);
  const tmp = `${image}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(tmp, '');
    fs.truncateSync(tmp, total);
    const s = (b: number) => b / 512;
    const script =
      table === 'gpt'
        ? `label: gpt\nstart=${s(bootStart)}, size=${s(bootSize)}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7, name=boot\nstart=${s(rootStart)}, size=${s(rootSize)}, type=0FC63DAF-8483-4772-8E3D-3D69D8477DE4, name=rootfs\n`
        : `label: dos\nstart=${s(bootStart)}, size=${s(bootSize)}, type=c, bootable\nstart=${s(rootStart)}, size=${s(rootSize)}, type=83\n`;
    await ctx.run('sfdisk', ['--quiet', tmp], { input: script });
    const dump = await ctx.run('sfdisk', ['--json', tmp], { quiet: true });
    const parsed = JSON.parse(dump.stdout) as { partitiontable: { id: string; partitions: { uuid?: string }[] } };
    const diskId = parsed.partitiontable.id.replace(/^0x/, '');
    const partuuid = (n: number) => (table === 'gpt' ? parsed.partitiontable.partitions[n - 1]?.uuid?.toLowerCase() : `${diskId}-${String(n).padStart(2, '0')}`) ?? '';
    // fstab and boot files name the partitions the way Raspberry Pi OS does: by PARTUUID.
    const fstab = `PARTUUID=${partuuid(2)}  /      ext4  defaults,noatime  0 1\nPARTUUID=${partuuid(1)}  /boot  vfat  defaults          0 2\n`;
    fs.writeFileSync(path.join(tree, 'etc', 'fstab'), fstab);
    fs.mkdirSync(path.join(tree, 'boot'), { recursive: true });
    // The FAT filesystem is made in a file of its own and copied in: mtools mis-reads a FAT
    // made in place with mkfs.vfat --offset inside a larger image.
    await withDir(async ({ path: bootDir }) => {
      const fat = path.join(bootDir, 'boot.vfat');
      await ctx.run('mkfs.vfat', ['-F', '32', '-n', sampleLayout.bootLabel, '-C', fat, String(bootSize / 1024)]);
      const files = Object.entries(sampleBootFiles).map(([name, text]) => {
        const f = path.join(bootDir, name);
        fs.writeFileSync(f, text.replace('@PARTUUID@', partuuid(2)));
        return f;
      });
      await ctx.run('mcopy', ['-i', fat, ...files, '::/']);
      await ctx.run('dd', [`if=${fat}`, `of=${tmp}`, 'bs=1M', `seek=${bootStart / MiB}`, 'conv=notrunc,sparse', 'status=none']);
    }, { tmpdir: path.dirname(image), prefix: 'boot-', unsafeCleanup: true });
    await ctx.run('mkfs.ext4', ['-q', '-F', '-L', sampleLayout.rootLabel, '-d', tree, '-E', `offset=${rootStart}`, tmp, `${rootSize / 1024}k`]);
    fs.renameSync(tmp, image);
  } finally {
    fs.rmSync(tmp, { force: true });
  }
}
