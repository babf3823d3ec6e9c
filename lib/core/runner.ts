// The one place that starts processes. Always argv arrays; every command is logged.
import { execa, type Options } from 'execa';
import { CommandError, interruptedBy } from './errors.js';
import type { Emit } from './events.js';
import { shellJoin } from './quote.js';

export interface RunOptions {
  /** Text written to the child's stdin. */
  input?: string;
  /** 'pipe' (default) captures output; 'inherit' hands the terminal to the child. */
  stdio?: 'pipe' | 'inherit';
  /** Append stdout and stderr to this file instead of capturing them. */
  logFile?: string;
  /** Called with each output line (when output is captured or logged). */
  onLine?: (line: string) => void;
  /** Extra environment; the child otherwise gets this process's environment. */
  env?: Record<string, string | undefined>;
  /** false: the child gets only `env` (for the chroot). */
  extendEnv?: boolean;
  /** Do not throw on a non-zero exit: return the result. */
  allowFailure?: boolean;
  /** Do not emit the command (for frequent probes). */
  quiet?: boolean;
  /** Put the child in its own process group and kill the whole group on cancel. */
  group?: boolean;
  /** Cancellation; defaults to the runner's own signal. Pass null to make a step uncancellable (undo). */
  signal?: AbortSignal | null;
  cwd?: string;
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** Interleaved stdout and stderr (when captured). */
  all: string;
  signal?: string;
}

export type Run = (file: string, args: readonly string[], options?: RunOptions) => Promise<RunResult>;

export interface RunnerOptions {
  emit: Emit;
  signal?: AbortSignal;
}

/** Lines of a logged command's output kept in memory (RunResult.all) for error messages. */
export const tailKept = 200;

export function createRunner({ emit, signal: defaultSignal }: RunnerOptions): Run {
  return async (file, args, options = {}) => {
    const argv = [file, ...args];
    if (!options.quiet) emit({ kind: 'cmd', argv });
    const signal = options.signal === null ? undefined : (options.signal ?? defaultSignal);
    if (signal?.aborted) throw interruptedBy(signal);

    const inherit = options.stdio === 'inherit';
    const execaOptions: Options = {
      reject: false,
      stripFinalNewline: false,
      env: options.env ?? {},
      extendEnv: options.extendEnv ?? true,
      cwd: options.cwd,
      // A terminal's Ctrl-C reaches the whole foreground process group: an undo step (uncancellable)
      // runs in a group of its own so a second Ctrl-C cannot kill it halfway.
      detached: (options.group ?? false) || options.signal === null,
      input: options.input,
      stdin: options.input !== undefined ? 'pipe' : inherit ? 'inherit' : 'ignore',
      stdout: inherit ? 'inherit' : options.logFile ? ['pipe', { file: options.logFile, append: true }] : 'pipe',
      stderr: inherit ? 'inherit' : options.logFile ? ['pipe', { file: options.logFile, append: true }] : 'pipe',
      all: !inherit,
      lines: false,
      // A logged command (a compiler run) may print far more than memory should hold: keep only
      // its tail, below, for the error message.
      buffer: !options.logFile,
      maxBuffer: 64 * 1024 * 1024,
    };
    const child = execa(file, args, execaOptions);

    let cancelled = false;
    const onAbort = () => {
      cancelled = true;
      killChild(child.pid, options.group ?? false);
    };
    signal?.addEventListener('abort', onAbort, { once: true });

    const tail: string[] = [];
    let partial = '';
    if ((options.onLine || options.logFile) && child.all) {
      child.all.on('data', (chunk: Buffer) => {
        const text = partial + chunk.toString('utf8');
        const lines = text.split('\n');
        partial = lines.pop() ?? '';
        for (const line of lines) {
          options.onLine?.(line);
          if (options.logFile) {
            tail.push(line);
            if (tail.length > tailKept) tail.shift();
          }
        }
      });
    }

    const result = await child;
    signal?.removeEventListener('abort', onAbort);
    const out: RunResult = {
      exitCode: result.exitCode ?? (result.signal ? 128 + signalNumber(result.signal) : 1),
      stdout: typeof result.stdout === 'string' ? result.stdout : '',
      stderr: typeof result.stderr === 'string' ? result.stderr : '',
      all: typeof result.all === 'string' ? result.all : options.logFile ? [...tail, partial].join('\n') : '',
      ...(result.signal ? { signal: result.signal } : {}),
    };
    if (cancelled && signal) throw interruptedBy(signal);
    if (out.exitCode !== 0 && !options.allowFailure) {
      const notFound = (result as { code?: string }).code === 'ENOENT';
      throw new CommandError(
        shellJoin(argv),
        notFound ? undefined : out.exitCode,
        notFound ? `${file}: command not found` : out.all || out.stderr,
        result.signal ?? undefined,
        result.cause,
      );
    }
    return out;
  };
}

function killChild(pid: number | undefined, group: boolean): void {
  if (!pid) return;
  try {
    process.kill(group ? -pid : pid, 'SIGKILL');
  } catch {
    // already gone
  }
}

const signalNumbers: Record<string, number> = { SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGKILL: 9, SIGTERM: 15 };
function signalNumber(name: string): number {
  return signalNumbers[name] ?? 1;
}

export interface Started {
  pid: number;
  /** Resolves with the first stdout line that satisfies `test`, rejects if the process exits first. */
  waitForLine(test: (line: string) => boolean): Promise<string>;
  /** Every later stdout line goes to `listener` too. */
  onLine(listener: (line: string) => void): void;
  /** Write to the child's stdin. */
  write(text: string): void;
  /** Close the child's stdin (our holders exit on EOF). */
  closeStdin(): void;
  /** Resolves when the process has exited. */
  exited: Promise<RunResult>;
}

/** Start a long-lived process (a namespace holder) whose stdin stays open as a lifeline. */
export function start(emit: Emit, file: string, args: readonly string[]): Started {
  emit({ kind: 'cmd', argv: [file, ...args] });
  // Its own process group: a Ctrl-C on the terminal must not end a holder (and release its lock or
  // drop its namespace) while imgbuild is still using it. It ends when its stdin closes.
  const child = execa(file, args, { reject: false, stdin: 'pipe', stdout: 'pipe', stderr: 'pipe', all: true, buffer: false, cleanup: false, detached: true });
  let partial = '';
  let errors = '';
  const waiters: { test: (l: string) => boolean; resolve: (l: string) => void; reject: (e: Error) => void }[] = [];
  const listeners: ((line: string) => void)[] = [];
  child.stdout?.on('data', (chunk: Buffer) => {
    const lines = (partial + chunk.toString('utf8')).split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) {
      for (const w of [...waiters]) {
        if (w.test(line)) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(line);
        }
      }
      for (const l of listeners) l(line);
    }
  });
  // Only stderr is kept for the result: stdout is a protocol, read line by line above.
  child.stderr?.on('data', (chunk: Buffer) => {
    errors = (errors + chunk.toString('utf8')).slice(-64 * 1024);
  });
  // A holder that exits (or is killed) while we write to it must not crash imgbuild with EPIPE.
  child.stdin?.on('error', () => undefined);
  const exited = child.then((r) => {
    const result: RunResult = {
      exitCode: r.exitCode ?? 1,
      stdout: partial,
      stderr: errors,
      all: errors,
      ...(r.signal ? { signal: r.signal } : {}),
    };
    for (const w of waiters.splice(0)) {
      w.reject(new CommandError(shellJoin([file, ...args]), result.exitCode, result.all));
    }
    return result;
  });
  return {
    pid: child.pid ?? 0,
    waitForLine: (test) => new Promise((resolve, reject) => waiters.push({ test, resolve, reject })),
    onLine: (listener) => listeners.push(listener),
    write: (text) => child.stdin?.write(text),
    closeStdin: () => child.stdin?.end(),
    exited,
  };
}
