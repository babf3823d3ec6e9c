import type { Argv } from 'yargs';
import { startAccel, UsageError, withSession } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { type AccelArgs, accelFromArgs, accelOptions, type SessionArgs, sessionFromArgs, sessionOptions } from './options.js';

export const command = 'run <image> [cmd..]';
export const describe = 'Run one command in the image chroot (after --); exits with its exit code';

export function builder(y: Argv) {
  return accelOptions(sessionOptions(y.positional('image', { type: 'string', demandOption: true }).positional('cmd', { type: 'string', array: true })), 'none');
}

type Args = GlobalArgs & SessionArgs & AccelArgs & { cmd?: string[]; '--'?: string[] };

export async function handler(args: Args) {
  const cmd = [...(args.cmd ?? []), ...(args['--'] ?? [])].map(String);
  await runCli(args, async (ctx) => {
    if (cmd.length === 0) throw new UsageError('no command given', 'usage: imgbuild run IMAGE -- CMD [ARGS...]');
    const options = sessionFromArgs(args, 'run', !!process.stdin.isTTY);
    const accel = accelFromArgs(args);
    return withSession(ctx, options, async (session) => {
      const { env } = await startAccel(ctx, session, accel, { guardDpkg: true });
      return (await session.exec(cmd, { stdio: 'inherit', allowFailure: true, env })).exitCode;
    });
  });
}
