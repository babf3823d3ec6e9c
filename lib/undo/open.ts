// One way to open and close a transaction: the journal (when the changes need `imgbuild recover`
// after kill -9), the undo stack, and the closing that unwinds it, reports what failed and removes
// the journal once nothing is left. Sessions, kept mounts, grow, sample images, the capability
// probe and recover's repair all use it.
import type { Context } from '../core/context.js';
import { CleanupError, errorMessage, StepError } from '../core/errors.js';
import { stage } from '../core/events.js';
import type { FileId } from '../core/identity.js';
import { Journal } from './journal.js';
import { Transaction, type Undoer } from './transaction.js';

export interface TransactionOptions {
  /** The journal's verb; without one nothing is journaled (changes the kernel undoes by itself). */
  verb?: string;
  /** The image the changes are made for, named in the journal. */
  image?: { id: FileId; path: string };
  undoer: Undoer;
  /** Show the unwinding as the "clean up" stage. */
  stage?: boolean;
  /** A step that failed once and succeeded when retried fails the job (exit 1) when nothing else did. */
  strict?: boolean;
}

export interface OpenTransaction<J extends Journal | undefined = Journal | undefined> {
  readonly tx: Transaction;
  readonly journal: J;
  /**
   * Undo everything, newest first. Throws a CleanupError naming each step that failed (with
   * `primary`, the error that ended the job, as its cause); the journal is removed only when
   * nothing is left.
   */
  close(primary?: unknown): Promise<void>;
}

export function openTransaction(ctx: Context, o: TransactionOptions & { verb: string }): OpenTransaction<Journal>;
export function openTransaction(ctx: Context, o: TransactionOptions): OpenTransaction;
export function openTransaction(ctx: Context, o: TransactionOptions): OpenTransaction {
  const journal = o.verb === undefined ? undefined : Journal.create(ctx.stateDir, o.verb, o.image);
  const tx = new Transaction(ctx, journal, o.undoer);
  return { tx, journal, close: (primary) => closeTransaction(ctx, tx, journal, o, primary) };
}

async function closeTransaction(ctx: Context, tx: Transaction, journal: Journal | undefined, o: TransactionOptions, primary: unknown): Promise<void> {
  const unwind = async () => {
    const f = await tx.unwind();
    if (f.length > 0) throw new CleanupError(f, primary);
  };
  await (o.stage ? stage(ctx.emit, 'clean up', unwind) : unwind());
  journal?.close();
  // Everything is undone, but a step needed a second try: say so unless an error already will.
  const recovered = tx.stack.recovered;
  if (o.strict && recovered.length > 0 && primary === undefined) {
    throw new StepError(
      `cleanup step${recovered.length > 1 ? 's' : ''} ${recovered.map((r) => `"${r.step}" (${errorMessage(r.error)})`).join(', ')} failed once and succeeded when retried; nothing is left behind`,
      'the job itself finished; if this repeats, run with --verbose and report it',
    );
  }
}
