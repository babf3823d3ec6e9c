// Shared CLI plumbing: signals become an AbortController, errors become exit codes and one
// clear message. Only bin/ prints or exits.
import { CleanupError, createContext, type Context, errorMessage, ExitCode, ImgbuildError, InterruptedError, TimeoutError } from '../lib/index.js';
import { createReporter, loadSpinner } from './reporter.js';

export interface GlobalArgs {
  verbose?: boolean;
  quiet?: boolean;
  color?: boolean;
  json?: boolean;
  'state-dir'?: string;
  'cache-dir'?: string;
}

export interface CliOptions {
  /** Interactive child on the terminal: Ctrl-C belongs to it, not to us. */
  interactive?: boolean;
  /** --timeout: after this many milliseconds the run is stopped (and undone) as by SIGTERM, and fails. */
  timeout?: { ms: number; text: string };
}

export async function runCli(args: GlobalArgs, fn: (ctx: Context) => Promise<number | void>, options: CliOptions = {}): Promise<never> {
  const controller = new AbortController();
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    if (options.interactive && sig === 'SIGINT') return;
    signals++;
    if (signals === 1) controller.abort(sig);
    else process.stderr.write(`imgbuild: ${sig} again: still cleaning up, please wait (kill -9 and then \`imgbuild recover\` if it hangs)\n`);
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, onSignal);
  const timer = options.timeout && setTimeout(() => {
    process.stderr.write(`imgbuild: --timeout ${options.timeout!.text} reached: stopping and cleaning up\n`);
    controller.abort(new TimeoutError(options.timeout!.text));
  }, options.timeout.ms);
  if (timer) timer.unref();

  const tty = !!process.stderr.isTTY && (process.stderr.columns ?? 0) > 0;
  const quiet = !!args.json || !!args.quiet;
  // --no-color is NO_COLOR for this process: the reporter and every library that honours it.
  if (args.color === false) process.env.NO_COLOR = '1';
  const emit = createReporter({ verbose: !!args.verbose, quiet, tty, spinner: quiet ? undefined : await loadSpinner(tty, !!args.verbose) });
  const ctx = createContext({ emit, signal: controller.signal, stateDir: args['state-dir'], cacheDir: args['cache-dir'] });
  let code: number;
  try {
    if (process.getuid?.() !== 0) {
      throw new ImgbuildErrorPrecondition('imgbuild needs root (loop devices, mounts, chroot)', 'run it with sudo');
    }
    code = (await fn(ctx)) ?? ExitCode.ok;
  } catch (error) {
    code = report(error);
  }
  if (timer) clearTimeout(timer);
  const timedOut = controller.signal.reason instanceof TimeoutError;
  if (controller.signal.aborted && code !== ExitCode.cleanupIncomplete) code = timedOut ? ExitCode.failed : ExitCode.interrupted;
  process.exit(code);
}

class ImgbuildErrorPrecondition extends ImgbuildError {
  override readonly exitCode: number = ExitCode.precondition;
}

export function report(error: unknown): number {
  if (error instanceof CleanupError) {
    if (error.primary && !(error.primary instanceof InterruptedError)) process.stderr.write(`imgbuild: error: ${errorMessage(error.primary)}\n`);
    process.stderr.write(`imgbuild: ${error.message}\n  hint: ${error.hint}\n`);
    return error.exitCode;
  }
  if (error instanceof ImgbuildError) {
    process.stderr.write(`imgbuild: ${error instanceof InterruptedError ? '' : 'error: '}${errorMessage(error)}\n`);
    if (error.hint) process.stderr.write(`  hint: ${error.hint}\n`);
    return error.exitCode;
  }
  process.stderr.write(`imgbuild: internal error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  return ExitCode.failed;
}
