import type { Argv } from 'yargs';
import { cacheParts, clearCache, human, listCache } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';

export const command = 'cache [parts..]';
export const describe = `Show the cache directory (${Object.keys(cacheParts).join(', ')}) and its sizes; --clear removes parts (all if none named)`;

export function builder(y: Argv) {
  return y
    .positional('parts', { type: 'string', array: true, describe: Object.keys(cacheParts).join(', ') })
    .option('clear', { type: 'boolean', default: false, describe: 'remove the named parts (never what a running build holds)' })
    .option('json', { type: 'boolean', default: false });
}

export async function handler(args: GlobalArgs & { parts?: string[]; clear: boolean; json: boolean }) {
  await runCli(args, async (ctx) => {
    if (args.clear) {
      const r = clearCache(ctx.cacheDir, (args.parts ?? []).map(String));
      if (args.json) process.stdout.write(`${JSON.stringify(r, null, 2)}\n`);
      else {
        for (const p of r.removed) process.stdout.write(`removed ${p}\n`);
        for (const p of r.skipped) process.stdout.write(`kept ${p}\n`);
      }
      return;
    }
    const parts = listCache(ctx.cacheDir);
    if (args.json) process.stdout.write(`${JSON.stringify({ cacheDir: ctx.cacheDir, parts }, null, 2)}\n`);
    else {
      process.stdout.write(`cache: ${ctx.cacheDir}\n`);
      for (const p of parts) {
        process.stdout.write(`  ${p.name.padEnd(10)} ${human(p.bytes).padStart(10)}  ${p.describe}\n`);
        for (const e of p.entries ?? []) process.stdout.write(`  ${''.padEnd(10)} ${''.padStart(10)}    ${e}\n`);
      }
    }
  });
}
