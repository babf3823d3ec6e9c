import type { Argv } from 'yargs';
import { doctor } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'doctor';
export const describe = 'What this host can do, each missing item with its fix';

export function builder(y: Argv) {
  return y
    .option('json', { type: 'boolean', default: false })
    .option('probe', { type: 'boolean', default: true, describe: 'try loop partition scanning, binfmt_misc and unshare for real (each undone at once); --no-probe only reads' });
}

export async function handler(args: GlobalArgs & { probe: boolean }) {
  await runCli(args, async (ctx) => {
    const checks = await doctor(ctx, { probe: args.probe });
    if (args.json) {
      process.stdout.write(`${JSON.stringify(checks, null, 2)}\n`);
    } else {
      for (const c of checks.filter((c) => !c.section)) {
        const mark = c.ok ? 'ok  ' : c.optional ? 'n/a ' : 'FAIL';
        process.stdout.write(`${mark} ${c.name.padEnd(38)} ${c.detail}${!c.ok && c.fix ? `\n     fix: ${c.fix}` : ''}\n`);
      }
      const caches = checks.filter((c) => c.section === 'cache');
      if (caches.length > 0) {
        process.stdout.write('\ncaches (imgbuild cache PART --clear empties one):\n');
        for (const c of caches) process.stdout.write(`     ${c.name.replace(/^cache /, '').padEnd(8)} ${c.detail}\n`);
      }
    }
    return checks.some((c) => !c.ok && !c.optional) ? 3 : 0;
  });
}
