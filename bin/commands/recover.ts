import type { Argv } from 'yargs';
import { recover } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'recover';
export const describe = 'Undo what sessions whose process died (kill -9, OOM) left behind, from the journal';

export function builder(y: Argv) {
  return y.option('dry-run', { type: 'boolean', default: false, describe: 'only say what would be undone' }).option('json', { type: 'boolean', default: false });
}

export async function handler(args: GlobalArgs & { 'dry-run': boolean }) {
  await runCli(args, async (ctx) => {
    const r = await recover(ctx, { dryRun: args['dry-run'] });
    if (args.json) {
      process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
    } else {
      for (const s of r.skipped) process.stdout.write(`left alone: ${s}\n`);
      if (r.sessions.length === 0) process.stdout.write('nothing to do\n');
      for (const a of r.actions) {
        const mark = a.ok === undefined ? 'would' : a.nothing ? 'left ' : a.ok ? 'done ' : 'FAIL ';
        process.stdout.write(`${mark} [${a.session}] ${a.step}${a.error ? `: ${a.error}` : ''}${a.nothing ? `: nothing to do, ${a.nothing}` : ''}\n`);
      }
      if (r.sessions.length > 0 && r.actions.length === 0) process.stdout.write(`cleared ${r.sessions.length} finished session record(s)\n`);
    }
    return r.actions.some((a) => a.ok === false) ? 4 : 0;
  });
}
