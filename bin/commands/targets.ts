import type { Argv } from 'yargs';
import { commonOptions, listRecipes } from '../../lib/index.js';

export const command = 'targets';
export const describe = 'List the build recipes, the versions each knows and their options (no root needed)';

export function builder(y: Argv) {
  return y.option('json', { type: 'boolean', default: false }).option('long', { alias: 'l', type: 'boolean', default: false, describe: 'show each recipe\'s version table' });
}

export function handler(args: { json: boolean; long: boolean }) {
  const recipes = listRecipes();
  if (args.json) {
    process.stdout.write(`${JSON.stringify(recipes, null, 2)}\n`);
    return;
  }
  const out: string[] = [];
  for (const r of recipes) {
    out.push(`${r.spec.padEnd(24)} ${r.describe}`);
    if (r.versions.length) out.push(`${''.padEnd(24)} versions: ${r.versions.join(', ')}${r.defaultVersion ? ` (default ${r.defaultVersion})` : ''}`);
    for (const [k, v] of Object.entries(r.options)) out.push(`${''.padEnd(24)} option ${k}=...: ${v}`);
    if (args.long) {
      for (const row of r.table) {
        const extra = [
          `python ${row.python[0]}-${row.python[1]}`,
          row.pip.length ? `pip ${row.pip.join(' ')}` : '',
          row.cmake ? `cmake>=${row.cmake}` : '',
          row.pairs ? Object.entries(row.pairs).map(([n, v]) => `${n} ${v.join('/')}`).join(' ') : '',
        ].filter(Boolean);
        out.push(`${''.padEnd(26)}${row.versions.join(', ')}: ${extra.join('; ')}`);
      }
    }
  }
  out.push('', 'Every target also takes (the build verb\'s --apt, --env, --config-setting and --runtime-apt give them to all targets):');
  for (const [k, v] of Object.entries(commonOptions)) out.push(`${''.padEnd(24)} option ${k}=...: ${v}`);
  out.push('', 'Options follow the spec after commas: --target onnxruntime@1.23.0,ep=qnn,qnn_home=/opt/qairt');
  process.stdout.write(`${out.join('\n')}\n`);
}
