import type { Argv } from 'yargs';
import { buildSample, parseArch, UsageError } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'sample';
export const describe = 'Make (or reuse from the cache) a PYNQ-like sample SD-card image; prints its path';

export function builder(y: Argv) {
  return y
    .option('arch', { type: 'string', default: 'aarch64', describe: 'aarch64 or armhf' })
    .option('table', { choices: ['mbr', 'gpt'] as const, default: 'mbr' as const })
    .option('suite', { type: 'string', describe: 'the Debian release of the userland: bullseye (Python 3.9), bookworm (3.11), trixie (3.13); default the host\'s, from the host\'s own mirrors' })
    .option('mirror', { type: 'string', describe: 'an apt archive that carries the image architecture, for --suite (needed on an Ubuntu host, whose own archive carries amd64 and i386 only)' })
    .option('fresh', { type: 'boolean', default: false, describe: 'rebuild even if cached' });
}

export async function handler(args: GlobalArgs & { arch: string; table: 'mbr' | 'gpt'; suite?: string; mirror?: string; fresh: boolean }) {
  await runCli(args, async (ctx) => {
    const arch = parseArch(args.arch);
    if (!arch) throw new UsageError(`unknown arch ${args.arch}`, 'use aarch64 or armhf');
    const image = await buildSample(ctx, { arch, table: args.table, fresh: args.fresh, ...(args.suite ? { suite: args.suite } : {}), ...(args.mirror ? { mirror: args.mirror } : {}) });
    process.stdout.write(`${image}\n`);
  });
}
