import type { Argv } from 'yargs';
import { type AttachStrategy, UsageError, withSession } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { sessionOptions } from './options.js';

export const command = 'run <image> [cmd..]';
export const describe = 'Run one command in the image chroot (after --); exits with its exit code';

export function builder(y: Argv) {
  return sessionOptions(y.positional('image', { type: 'string', demandOption: true }).positional('cmd', { type: 'string', array: true }));
}

type Args = GlobalArgs & { image: string; cmd?: string[]; '--'?: string[]; attach: AttachStrategy | 'auto'; workspace?: string; rw: boolean; 'allow-block-device': boolean };

export async function handler(args: Args) {
  const cmd = [...(args.cmd ?? []), ...(args['--'] ?? [])].map(String);
  await runCli(args, async (ctx) => {
    if (cmd.length === 0) throw new UsageError('no command given', 'usage: imgbuild run IMAGE -- CMD [ARGS...]');
    const options = {
      image: args.image,
      mode: args.rw ? ('rw' as const) : ('overlay' as const),
      verb: 'run',
      attach: args.attach,
      workspace: args.workspace,
      allowBlockDevice: args['allow-block-device'],
      hostPts: !!process.stdin.isTTY,
    };
    return withSession(ctx, options, async (session) => (await session.exec(cmd, { stdio: 'inherit', allowFailure: true })).exitCode);
  });
}
