import fs from 'node:fs';
import type { Argv } from 'yargs';
import { withSession } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { type SessionArgs, sessionFromArgs, sessionOptions } from './options.js';

export const command = 'shell <image>';
export const describe = 'An interactive shell in the image chroot; everything is undone when it exits';

export function builder(y: Argv) {
  return sessionOptions(y.positional('image', { type: 'string', demandOption: true })).option('shell', { type: 'string', default: '/bin/bash', describe: 'shell inside the image (falls back to /bin/sh)' });
}

type Args = GlobalArgs & SessionArgs & { shell: string };

export async function handler(args: Args) {
  await runCli(
    args,
    async (ctx) => {
      const options = sessionFromArgs(args, 'shell', true);
      return withSession(ctx, options, async (session) => {
        const shell = fs.existsSync(session.file(args.shell)) ? args.shell : '/bin/sh';
        process.stderr.write(`imgbuild: shell in ${session.image.path} (${session.arch}${session.mode === 'rw' ? ', writes go to the image' : ', changes are discarded on exit'}); exit to leave\n`);
        const r = await session.exec([shell, '-i'], { stdio: 'inherit', allowFailure: true, env: { PS1: `(imgbuild ${session.arch}) \\w# ` } });
        return r.exitCode;
      });
    },
    { interactive: true },
  );
}
