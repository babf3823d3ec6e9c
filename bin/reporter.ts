// Draws library events: an ora spinner per stage on a TTY, plain lines otherwise.
import ora, { type Ora } from 'ora';
import { errorMessage, type ImgbuildEvent } from '../lib/index.js';
import { shellJoin } from '../lib/quote.js';

export interface ReporterOptions {
  verbose: boolean;
  /** Write nothing but errors (for --json). */
  quiet: boolean;
  tty: boolean;
}

export function createReporter(o: ReporterOptions): (e: ImgbuildEvent) => void {
  let spinner: Ora | undefined;
  const stream = process.stderr;
  const line = (text: string) => {
    if (spinner?.isSpinning) spinner.clear();
    stream.write(`${text}\n`);
    if (spinner?.isSpinning) spinner.render();
  };
  return (e) => {
    if (o.quiet && e.kind !== 'warn') return;
    switch (e.kind) {
      case 'stage':
        if (e.phase === 'start') {
          if (o.tty && !o.verbose) {
            spinner = ora({ text: e.name, stream }).start();
          } else line(`imgbuild: ${e.name} ...`);
        } else {
          const secs = `${(e.ms / 1000).toFixed(1)}s`;
          if (spinner && o.tty && !o.verbose) {
            if (e.phase === 'end') spinner.succeed(`${e.name} (${secs})`);
            else spinner.fail(`${e.name} (${secs})`);
            spinner = undefined;
          } else line(`imgbuild: ${e.name}: ${e.phase === 'end' ? 'done' : 'FAILED'} (${secs})`);
        }
        break;
      case 'cmd':
        if (o.verbose) line(`+ ${shellJoin(e.argv)}`);
        break;
      case 'undo':
        if (!e.ok) line(`imgbuild: cleanup step failed: ${e.step}: ${errorMessage(e.error)}`);
        else if (o.verbose) line(`imgbuild: undone: ${e.step}`);
        break;
      case 'info':
        if (o.verbose) line(`imgbuild: ${e.message}`);
        break;
      case 'warn':
        line(`imgbuild: warning: ${e.message}`);
        break;
      case 'output':
        if (spinner?.isSpinning) spinner.text = `${spinner.text.split(' | ')[0]} | ${e.line.slice(0, 80)}`;
        else if (o.verbose) line(e.line);
        break;
    }
  };
}
