import type { Argv } from 'yargs';
import { UsageError, withSession } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { type SessionArgs, sessionFromArgs, sessionOptions } from './options.js';

export const command = 'run <image> [cmd..]';
export const describe = 'Run one command in the image chroot (after --); exits with its exit code';

export function builder(y: Argv) {
  return sessionOptions(y.positional('image', { type: 'string', demandOption: true }).positional('cmd', { type: 'string', array: true }));
}

type Args = GlobalArgs & SessionArgs & { cmd?: string[]; '--'?: string[] };

export async function handler(args: Args) {
  const cmd = [...(args.cmd ?? []), ...(args['--'] ?? [])].map(String);
  await runCli(args, async (ctx) => {
    if (cmd.length === 0) throw new UsageError('no command given', 'usage: imgbuild run IMAGE -- CMD [ARGS...]');
    const options = sessionFromArgs(args, 'run', !!process.stdin.isTTY);
    return withSession(ctx, options, async (session) => (await session.exec(cmd, { stdio: 'inherit', allowFailure: true })).exitCode);
  });
}
