import type { Argv } from 'yargs';
import { umountKept } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'umount <dir>';
export const describe = 'Undo an imgbuild mount: unmount, detach, in reverse order';

export function builder(y: Argv) {
  return y.positional('dir', { type: 'string', demandOption: true });
}

export async function handler(args: GlobalArgs & { dir: string }) {
  await runCli(args, async (ctx) => {
    const image = await umountKept(ctx, args.dir);
    process.stdout.write(`unmounted ${image} from ${args.dir}\n`);
  });
}
