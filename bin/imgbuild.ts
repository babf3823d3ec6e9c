#!/usr/bin/env node
// Thin CLI: yargs wiring only; each verb lives in bin/commands/<verb>.ts.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import * as buildCmd from './commands/build.js';
import * as cache from './commands/cache.js';
import * as doctor from './commands/doctor.js';
import * as faults from './commands/faults.js';
import * as grow from './commands/grow.js';
import * as inspect from './commands/inspect.js';
import * as mount from './commands/mount.js';
import * as recover from './commands/recover.js';
import * as run from './commands/run.js';
import * as sample from './commands/sample.js';
import * as shell from './commands/shell.js';
import * as targets from './commands/targets.js';
import * as umount from './commands/umount.js';
import { packageVersion } from '../lib/index.js';
import { exitCodes, withHelp } from './help.js';
import { mistypedVerb, protectDashImage } from './verbs.js';

const verbs = ['build', 'targets', 'inspect', 'run', 'shell', 'mount', 'umount', 'grow', 'recover', 'doctor', 'cache', 'sample', 'faults', 'completion'];
const typo = mistypedVerb(hideBin(process.argv)[0], verbs);
if (typo) {
  process.stderr.write(`imgbuild: usage error: there is no verb ${hideBin(process.argv)[0]}; did you mean imgbuild ${typo}? (imgbuild --help lists the verbs)\n`);
  process.exit(2);
}

const cli = yargs(protectDashImage(hideBin(process.argv), verbs))
  .scriptName('imgbuild')
  // yargs would read the package.json nearest the current directory: a user's project's version.
  .version(packageVersion())
  .parserConfiguration({ 'populate--': true, 'unknown-options-as-args': false })
  .option('verbose', { alias: 'v', type: 'boolean', default: false, describe: 'log every command' })
  .option('quiet', { alias: 'q', type: 'boolean', default: false, describe: 'print only warnings, errors and results (no progress)' })
  .option('color', { type: 'boolean', default: true, describe: 'colour on a terminal (--no-color, or NO_COLOR set, turns it off)' })
  .option('state-dir', { type: 'string', hidden: true })
  .option('cache-dir', { type: 'string', describe: 'where sample images, sources and caches live (default /var/cache/imgbuild)' })
  .command(withHelp('build', buildCmd))
  .command(withHelp('targets', targets))
  .command(withHelp('inspect', inspect))
  .command(withHelp('run', run))
  .command(withHelp('shell', shell))
  .command(withHelp('mount', mount))
  .command(withHelp('umount', umount))
  .command(withHelp('grow', grow))
  .command(withHelp('recover', recover))
  .command(withHelp('doctor', doctor))
  .command(withHelp('cache', cache))
  .command(withHelp('sample', sample))
  // For tests: hidden from the main help (imgbuild faults --help still answers).
  .command({ ...withHelp('faults', faults), describe: false })
  .completion('completion', 'print a bash/zsh completion script (imgbuild completion >> ~/.bashrc)')
  .demandCommand(1)
  .strict()
  .help()
  .epilog(`${exitCodes} \`run\` exits with the command's own code.`)
  .fail((msg, err, y) => {
    if (err) throw err;
    process.stderr.write(`${y.help()}\n`);
    process.stderr.write(`imgbuild: usage error: ${msg}\n`);
    process.exit(2);
  });

// Before it runs a verb's handler, yargs lays out that verb's whole help text in case the handler
// fails and help is shown afterwards: about 50 ms of measuring strings, a sixth of a short
// session. Our handlers report their own errors and never show help; --help and usage errors
// still lay it out when they need it.
const usage = (cli as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } }).getInternalMethods?.().getUsageInstance?.();
if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => undefined;

await cli.parseAsync();
