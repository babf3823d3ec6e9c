import type { Argv } from 'yargs';
import { type AttachStrategy, formatFacts, inspectImage } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { attachOption, pythonOf, pythonOption } from './options.js';

export const command = 'inspect <image>';
export const describe = 'Show partitions, roles, arch, OS, Python, glibc and the wheel tag (read-only)';

export function builder(y: Argv) {
  return attachOption(y.positional('image', { type: 'string', demandOption: true })).option('json', { type: 'boolean', default: false }).option('python', pythonOption);
}

export async function handler(args: GlobalArgs & { image: string; attach: AttachStrategy | 'auto'; 'allow-block-device': boolean; python?: string }) {
  await runCli(args, async (ctx) => {
    const facts = await inspectImage(ctx, args.image, { attach: args.attach, allowBlockDevice: args['allow-block-device'], ...(pythonOf(args.python) ? { python: pythonOf(args.python)! } : {}) });
    process.stdout.write(args.json ? `${JSON.stringify(facts, null, 2)}\n` : `${formatFacts(facts)}\n`);
  });
}
