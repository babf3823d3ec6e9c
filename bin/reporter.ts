// Draws library events: an ora spinner per stage on a TTY (elapsed time and the last line of
// the build log), plain lines otherwise (with a heartbeat for long stages, for CI logs).
import type { Ora, Options as OraOptions } from 'ora';
import { errorMessage, type ImgbuildEvent, shellJoin } from '../lib/index.js';

export interface ReporterOptions {
  verbose: boolean;
  /** Write nothing but errors (for --json). */
  quiet: boolean;
  tty: boolean;
  /** Plain mode: print a progress line for a running stage this often (ms). */
  heartbeatMs?: number;
  /** ora's default export, for spinners on a terminal (loaded only then: see loadSpinner). */
  spinner?: (options: OraOptions) => Ora;
}

/** ora, when the reporter will draw spinners: scripts and CI (no terminal) skip loading it. */
export async function loadSpinner(tty: boolean, verbose: boolean): Promise<ReporterOptions['spinner']> {
  return tty && !verbose ? (await import('ora')).default : undefined;
}

/** NO_COLOR set and not empty (no-color.org): no colour on the terminal either. */
export function noColor(env: NodeJS.ProcessEnv = process.env): boolean {
  return (env.NO_COLOR ?? '') !== '';
}

export function elapsed(ms: number): string {
  const s = Math.floor(ms / 1000);
  return s < 60 ? `${(ms / 1000).toFixed(1)}s` : `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
}

export function createReporter(o: ReporterOptions): (e: ImgbuildEvent) => void {
  let spinner: Ora | undefined;
  let current: { name: string; t0: number; last: string; timer?: NodeJS.Timeout } | undefined;
  const stream = process.stderr;
  const width = () => Math.max(20, (process.stderr.columns ?? 80) - 10);
  const line = (text: string) => {
    if (spinner?.isSpinning) spinner.clear();
    stream.write(`${text}\n`);
    if (spinner?.isSpinning) spinner.render();
  };
  const render = () => {
    if (!current) return;
    const head = `${current.name} (${elapsed(performance.now() - current.t0)})`;
    if (spinner) spinner.text = `${head}${current.last ? ` | ${current.last}` : ''}`.slice(0, width());
    else line(`imgbuild: ${head}${current.last ? `: ${current.last.slice(0, 160)}` : ''}`);
  };
  const endCurrent = () => {
    if (current?.timer) clearInterval(current.timer);
    current = undefined;
  };
  return (e) => {
    if (o.quiet && e.kind !== 'warn') return;
    switch (e.kind) {
      case 'stage':
        if (e.phase === 'start') {
          endCurrent();
          current = { name: e.name, t0: performance.now(), last: '' };
          if (o.tty && !o.verbose && o.spinner) {
            spinner = o.spinner({ text: e.name, stream, ...(noColor() ? { color: false } : {}) }).start();
            current.timer = setInterval(render, 1000);
          } else {
            line(`imgbuild: ${e.name} ...`);
            current.timer = setInterval(render, o.heartbeatMs ?? 60_000);
          }
          current.timer.unref();
        } else {
          if (current?.name === e.name) endCurrent();
          const secs = elapsed(e.ms);
          if (spinner && o.tty && !o.verbose) {
            const text = `${e.name} (${secs})`;
            // ora's ✔ and ✖ are coloured; NO_COLOR (no-color.org) gets them plain.
            if (noColor()) spinner.stopAndPersist({ symbol: e.phase === 'end' ? '✔' : '✖', text });
            else if (e.phase === 'end') spinner.succeed(text);
            else spinner.fail(text);
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
      case 'notice':
        line(`imgbuild: ${e.message}`);
        break;
      case 'warn':
        line(`imgbuild: warning: ${e.message}`);
        break;
      case 'output':
        if (current) current.last = e.line.replace(/\s+/g, ' ').trim() || current.last;
        if (spinner?.isSpinning) render();
        else if (o.verbose) line(e.line);
        break;
    }
  };
}
