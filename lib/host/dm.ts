// device-mapper maps made by kpartx (--attach kpartx, PYNQ's way): what `kpartx -a -v` made, and
// the undo that removes exactly those maps (checked by uuid) and the loop kpartx attached.
import fs from 'node:fs';
import path from 'node:path';
import type { Run } from '../core/runner.js';
import type { HostChange } from '../undo/journal.js';
import { detachLoop, loopBound } from './loop.js';

/** Pure: `kpartx -a -v` lines such as "add map loop0p1 (254:0): 0 16384 linear 7:0 2048". */
export function parseKpartxAdd(text: string): { name: string; dev: string; parent: string; offset: number }[] {
  const out = [];
  for (const line of text.split('\n')) {
    const m = /^add map (\S+) \((\d+:\d+)\): \d+ \d+ linear (\S+) (\d+)/.exec(line.trim());
    if (m) out.push({ name: m[1]!, dev: m[2]!, parent: m[3]!, offset: Number(m[4]) });
  }
  return out;
}

export function loopFromDev(dev: string): string | undefined {
  if (dev.startsWith('/dev/')) return dev;
  try {
    return `/dev/${path.basename(fs.readlinkSync(`/sys/dev/block/${dev}`))}`;
  } catch {
    return undefined;
  }
}

/** Undo of kpartx: remove our maps (checked by uuid), then the loop kpartx made. */
export async function removeDmMaps(run: Run, change: Extract<HostChange, { kind: 'dm-maps' }>): Promise<void> {
  const maps = change.maps ?? [];
  for (const m of [...maps].reverse()) {
    const info = await run('dmsetup', ['info', '-c', '--noheadings', '-o', 'uuid', m.name], { allowFailure: true, quiet: true, signal: null });
    if (info.exitCode !== 0) continue; // gone
    if (info.stdout.trim() !== m.uuid) throw new Error(`device-mapper map ${m.name} is not the one imgbuild made (uuid differs); left alone`);
    // kpartx -d finds maps through udev links and silently does nothing without udev: remove by name.
    await run('dmsetup', ['remove', '--retry', m.name], { signal: null });
  }
  if (change.loop && change.diskseq && loopBound(change.loop)) {
    await detachLoop(run, { kind: 'loop', image: change.image, imagePath: change.imagePath, offset: 0, sizelimit: 0, device: change.loop, diskseq: change.diskseq });
  }
}
