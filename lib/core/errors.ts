// One error family for the whole library: each carries the exit code the CLI uses, a hint
// saying what to do, and the cause. The library never prints and never exits.

import { shownPath } from './held-dir.js';

export const ExitCode = {
  ok: 0,
  failed: 1,
  usage: 2,
  precondition: 3,
  cleanupIncomplete: 4,
  interrupted: 130,
} as const;

export class ImgbuildError extends Error {
  readonly exitCode: number = ExitCode.failed;
  readonly hint: string | undefined;

  constructor(message: string, hint?: string, options?: { cause?: unknown }) {
    // A path through a held directory's descriptor is shown as the directory was given.
    super(shownPath(message), options);
    this.name = new.target.name;
    this.hint = hint === undefined ? undefined : shownPath(hint);
  }
}

/** Bad command-line usage: exit 2. */
export class UsageError extends ImgbuildError {
  override readonly exitCode: number = ExitCode.usage;
}

/** Bad input or a host that cannot do the job; nothing was changed: exit 3. */
export class PreconditionError extends ImgbuildError {
  override readonly exitCode: number = ExitCode.precondition;
}

/** A step of the job failed (a command, a build); cleanup ran: exit 1. */
export class StepError extends ImgbuildError {
  override readonly exitCode: number = ExitCode.failed;
}

/** The job was cancelled by a signal: exit 130. */
export class InterruptedError extends ImgbuildError {
  override readonly exitCode: number = ExitCode.interrupted;
  constructor(signal = 'SIGINT') {
    super(`interrupted by ${signal}`);
  }
}

/** A run stopped because it took longer than --timeout allows. Exit 1: the step failed. */
export class TimeoutError extends InterruptedError {
  override readonly exitCode: number = ExitCode.failed;
  constructor(readonly limit: string) {
    super();
    this.message = `stopped after --timeout ${limit}: everything it changed is undone`;
  }
}

/** The error for an aborted signal: its reason names the signal (SIGINT when it does not), or is a TimeoutError. */
export function interruptedBy(signal: AbortSignal): InterruptedError {
  const reason: unknown = signal.reason;
  if (reason instanceof TimeoutError) return reason;
  return new InterruptedError(typeof reason === 'string' && reason.startsWith('SIG') ? reason : 'SIGINT');
}

export interface CleanupFailure {
  step: string;
  error: unknown;
}

/** Some undo steps failed: the host may still hold state. Exit 4. */
export class CleanupError extends ImgbuildError {
  override readonly exitCode: number = ExitCode.cleanupIncomplete;
  readonly failures: CleanupFailure[];
  /** The error that started the unwinding, if any. */
  readonly primary: unknown;

  constructor(failures: CleanupFailure[], primary?: unknown) {
    const lines = failures.map((f) => `  - ${f.step}: ${errorMessage(f.error)}`);
    super(
      `cleanup incomplete, ${failures.length} step(s) failed:\n${lines.join('\n')}`,
      'run `imgbuild recover` to finish the cleanup; `imgbuild recover --dry-run` shows what is left',
    );
    this.failures = failures;
    this.primary = primary;
  }
}

/** A process exited non-zero (or could not start). */
export class CommandError extends ImgbuildError {
  readonly command: string;
  readonly commandExitCode: number | undefined;
  readonly output: string;

  constructor(command: string, exitCode: number | undefined, output: string, signal?: string, cause?: unknown) {
    const how = signal ? `was killed by ${signal}` : exitCode === undefined ? 'could not start' : `failed with exit code ${exitCode}`;
    const tail = tailLines(output, 20);
    super(`Command ${how}: ${command}${tail ? `\n${tail}` : ''}`, undefined, { cause });
    this.command = command;
    this.commandExitCode = exitCode;
    this.output = output;
  }
}

export function errorMessage(error: unknown): string {
  return shownPath(error instanceof Error ? error.message : String(error));
}

export function tailLines(text: string, n: number): string {
  const lines = text.replace(/\s+$/, '').split('\n');
  return lines.slice(-n).join('\n').trim();
}

export function isImgbuildError(error: unknown): error is ImgbuildError {
  return error instanceof ImgbuildError;
}
