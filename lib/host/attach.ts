// Making the image's partitions available as block devices, four ways: kpartx (device-mapper,
// as PYNQ's scripts do), partscan (losetup -P), partx (loop + partx -a) and offset (one loop per
// partition). `auto` picks the first this host supports.
import fs from 'node:fs';
import path from 'node:path';
import type { Capabilities } from './capabilities.js';
import { PreconditionError, UsageError } from '../core/errors.js';
import type { HostChange } from '../undo/journal.js';
import { waitFor } from '../core/wait.js';
import { attachLoop, diskseq, partitionNodes } from './loop.js';
import { loopFromDev, parseKpartxAdd } from './dm.js';
import type { ImageFile } from './image.js';
import type { Transaction } from '../undo/transaction.js';

export const attachStrategies = ['kpartx', 'partscan', 'partx', 'offset'] as const;
export type AttachStrategy = (typeof attachStrategies)[number];

/** Why a strategy cannot work here, or undefined if it can. */
export function unsupportedReason(strategy: AttachStrategy, caps: Capabilities, image: ImageFile): string | undefined {
  switch (strategy) {
    case 'kpartx':
      if (!caps.tools.kpartx) return 'kpartx is not installed (apt-get install kpartx)';
      if (!caps.deviceMapper) return 'the kernel has no device-mapper (dm-mod), which kpartx needs';
      return undefined;
    case 'partscan':
      if (!caps.partscan[image.table.type]) return `the kernel does not parse ${image.table.type.toUpperCase()} partition tables on loop devices (losetup -P made no partition nodes)`;
      return undefined;
    case 'partx':
      if (!caps.tools.partx) return 'partx is not installed (apt-get install util-linux)';
      return undefined;
    case 'offset':
      return undefined;
  }
}

export function chooseStrategy(requested: AttachStrategy | 'auto', caps: Capabilities, image: ImageFile): AttachStrategy {
  if (requested !== 'auto') {
    const why = unsupportedReason(requested, caps, image);
    if (why) throw new PreconditionError(`--attach ${requested} cannot work on this host: ${why}`, 'use --attach auto, or see `imgbuild doctor`');
    return requested;
  }
  for (const s of attachStrategies) if (!unsupportedReason(s, caps, image)) return s;
  throw new UsageError('no attach strategy works');
}

export class Attachment {
  private wholeDevice: Promise<string> | undefined;
  private readonly devices = new Map<number, string>();

  constructor(
    private readonly tx: Transaction,
    readonly image: ImageFile,
    readonly strategy: AttachStrategy,
    readonly readOnly: boolean,
  ) {}

  /** Loop devices this attachment made. */
  loops(): string[] {
    const loops = new Set<string>();
    for (const [, dev] of this.devices) if (/^\/dev\/loop\d+$/.test(dev)) loops.add(dev);
    if (this.whole) loops.add(this.whole);
    return [...loops];
  }

  /**
   * Flag our loops autoclear once their partitions are mounted: `losetup -d` on a device in use
   * only sets the flag, so the kernel frees the loop the moment the last mount goes, even if
   * imgbuild is killed. The journal still covers the window before this.
   */
  async autoclear(): Promise<void> {
    for (const loop of this.loops()) {
      await this.tx.ctx.run('losetup', ['--detach', loop], { allowFailure: true });
    }
  }

  private whole: string | undefined;

  /** The block device of partition `n`, attaching what is needed on first use. */
  async device(n: number): Promise<string> {
    const known = this.devices.get(n);
    if (known) return known;
    const part = this.image.table.partitions.find((p) => p.number === n);
    if (!part) throw new Error(`no partition ${n}`);
    if (this.strategy === 'offset') {
      const { device } = await attachLoop(this.tx, { image: this.image.id, imagePath: this.image.path, offset: part.start, sizelimit: part.size, readOnly: this.readOnly });
      this.devices.set(n, device);
      return device;
    }
    this.wholeDevice ??= this.attachWhole();
    this.whole = (await this.wholeDevice) || undefined;
    const dev = this.devices.get(n);
    if (!dev) throw new PreconditionError(`${this.strategy} made no device for partition ${n} of ${this.image.path}`, 'try --attach offset');
    return dev;
  }

  private async attachWhole(): Promise<string> {
    const { tx, image } = this;
    if (this.strategy === 'kpartx') return this.attachKpartx();
    const partscan = this.strategy === 'partscan';
    const { device, diskseq: seq } = await attachLoop(tx, { image: image.id, imagePath: image.path, readOnly: this.readOnly, partscan });
    if (this.strategy === 'partx') {
      const change: HostChange = { kind: 'partitions', device, diskseq: seq };
      await tx.change(`remove partition nodes of ${device}`, change, async () => {
        await tx.ctx.run('partx', ['--add', device]);
        return change;
      });
    }
    const want = image.table.partitions.map((p) => `${path.basename(device)}p${p.number}`);
    const ok = await waitFor(() => want.every((w) => partitionNodes(device).includes(w) && fs.existsSync(`/dev/${w}`)), 2000);
    if (!ok) {
      throw new PreconditionError(
        `${this.strategy}: the kernel made no partition devices for ${device} (have: ${partitionNodes(device).join(', ') || 'none'})`,
        'this kernel cannot parse the table on loop devices; use --attach partx or --attach offset',
      );
    }
    for (const p of image.table.partitions) this.devices.set(p.number, `${device}p${p.number}`);
    return device;
  }

  private async attachKpartx(): Promise<string> {
    const { tx, image } = this;
    const intent: HostChange = { kind: 'dm-maps', image: image.id, imagePath: image.path };
    const made = await tx.change(`remove device-mapper maps of ${image.path}`, intent, async () => {
      const args = ['-a', '-v', '-s'];
      if (this.readOnly) args.push('-r');
      const r = await tx.ctx.run('kpartx', [...args, image.path]);
      const parsed = parseKpartxAdd(r.stdout);
      if (parsed.length === 0) throw new PreconditionError(`kpartx made no maps for ${image.path}`, 'try --attach partx or --attach offset');
      const loop = loopFromDev(parsed[0]!.parent);
      const maps = [];
      for (const m of parsed) {
        const info = await tx.ctx.run('dmsetup', ['info', '-c', '--noheadings', '-o', 'uuid', m.name], { quiet: true });
        maps.push({ name: m.name, uuid: info.stdout.trim() });
      }
      return { ...intent, maps, ...(loop ? { loop, diskseq: diskseq(loop) ?? '' } : {}) };
    });
    if (made.kind !== 'dm-maps' || !made.maps) throw new Error('kpartx result missing');
    for (const m of made.maps) {
      const n = Number(/(\d+)$/.exec(m.name)?.[1]);
      const node = `/dev/mapper/${m.name}`;
      await waitFor(() => fs.existsSync(node), 2000);
      if (!fs.existsSync(node)) await tx.ctx.run('dmsetup', ['mknodes', m.name], { allowFailure: true });
      this.devices.set(n, node);
    }
    return made.loop ?? '';
  }
}
