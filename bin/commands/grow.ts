import type { Argv } from 'yargs';
import { formatGrowResult, growImage } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'grow <image> <size>';
export const describe = 'Grow the image file, its last (ext4 root) partition and the filesystem: +SIZE (by) or SIZE (new total), e.g. +512M, +1.5G, 4G';

export function builder(y: Argv) {
  return y
    .positional('image', { type: 'string', demandOption: true })
    .positional('size', { type: 'string', demandOption: true, describe: '+SIZE to grow by, SIZE for the new total; units K, M, G, T (powers of 1024)' })
    .option('json', { type: 'boolean', default: false });
}

export async function handler(args: GlobalArgs & { image: string; size: string }) {
  await runCli(args, async (ctx) => {
    const r = await growImage(ctx, { image: args.image, size: args.size });
    process.stdout.write(args.json ? `${JSON.stringify(r, null, 2)}\n` : `${formatGrowResult(r)}\n`);
  });
}
