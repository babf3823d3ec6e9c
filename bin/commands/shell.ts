import fs from 'node:fs';
import type { Argv } from 'yargs';
import { startAccel, withSession } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { type AccelArgs, accelFromArgs, accelOptions, type SessionArgs, sessionFromArgs, sessionOptions } from './options.js';

export const command = 'shell <image>';
export const describe = 'An interactive shell in the image chroot; everything is undone when it exits';

export function builder(y: Argv) {
  return accelOptions(sessionOptions(y.positional('image', { type: 'string', demandOption: true })), 'none').option('shell', { type: 'string', default: '/bin/bash', describe: 'shell inside the image (falls back to /bin/sh)' });
}

type Args = GlobalArgs & SessionArgs & AccelArgs & { shell: string };

export async function handler(args: Args) {
  await runCli(
    args,
    async (ctx) => {
      const options = sessionFromArgs(args, 'shell', true);
      const accel = accelFromArgs(args);
      return withSession(ctx, options, async (session) => {
        const shell = fs.existsSync(session.file(args.shell)) ? args.shell : '/bin/sh';
        process.stderr.write(`imgbuild: shell in ${session.image.path} (${session.arch}${session.mode === 'rw' ? ', writes go to the image' : ', changes are discarded on exit'}); exit to leave\n`);
        const { env } = await startAccel(ctx, session, accel, { guardDpkg: true });
        const r = await session.exec([shell, '-i'], { stdio: 'inherit', allowFailure: true, env: { ...env, PS1: `(imgbuild ${session.arch}) \\w# ` } });
        return r.exitCode;
      });
    },
    { interactive: true },
  );
}
