import type { Argv } from 'yargs';
import { type AttachStrategy, mountKept } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { attachOption } from './options.js';

export const command = 'mount <image> <dir>';
export const describe = "Mount the image's root (and boot) at DIR for work by hand; undo with imgbuild umount DIR";

export function builder(y: Argv) {
  return attachOption(y.positional('image', { type: 'string', demandOption: true }).positional('dir', { type: 'string', demandOption: true })).option('ro', { type: 'boolean', default: false, describe: 'read-only' }).option('json', { type: 'boolean', default: false, describe: 'print what was mounted as JSON' });
}

export async function handler(args: GlobalArgs & { image: string; dir: string; ro: boolean; json: boolean; attach: AttachStrategy | 'auto'; 'allow-block-device': boolean }) {
  await runCli(args, async (ctx) => {
    const m = await mountKept(ctx, { image: args.image, dir: args.dir, readOnly: args.ro, attach: args.attach, allowBlockDevice: args['allow-block-device'] });
    if (args.json) {
      process.stdout.write(`${JSON.stringify({ ...m, undo: `imgbuild umount ${m.dir}` }, null, 2)}\n`);
      return;
    }
    process.stdout.write(`mounted partition ${m.root} of ${m.image} at ${m.dir}${m.boot?.mounted ? `, boot at ${m.dir}${m.boot.mountpoint}` : ''}\nundo with: imgbuild umount ${m.dir}\n`);
  });
}
