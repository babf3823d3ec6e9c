// Couples the undo stack with the journal: a host change is journaled as an intent before it is
// made, its undo is registered the moment it succeeds, and undoing it marks it undone.
import type { Context } from '../core/context.js';
import type { CleanupFailure } from '../core/errors.js';
import type { Emit } from '../core/events.js';
import type { HostChange, Journal } from './journal.js';
import { UndoStack } from './stack.js';

/** Undoes one change; a string it returns says why there was nothing to undo (the thing is not ours any more). */
export type Undoer = (change: HostChange, made: boolean) => Promise<void | string>;

export class Transaction {
  readonly stack: UndoStack;

  constructor(
    readonly ctx: Context,
    readonly journal: Journal | undefined,
    private readonly undoer: Undoer,
  ) {
    this.stack = new UndoStack(ctx.emit);
  }

  get emit(): Emit {
    return this.ctx.emit;
  }

  /**
   * Make a journaled host change. `act` makes it and returns the change as made (with the
   * identities it learnt, such as a loop device and its diskseq). If `act` fails, the intent is
   * undone at once (the undoer copes with a change that may not have happened).
   */
  async change(name: string, intent: HostChange, act: () => Promise<HostChange>): Promise<HostChange> {
    const seq = this.journal?.intent(intent);
    let made: HostChange;
    try {
      made = await act();
    } catch (error) {
      try {
        await this.undoer(intent, false);
        if (seq !== undefined) this.journal?.undone(seq);
      } catch {
        // left in the journal for `imgbuild recover`
      }
      throw error;
    }
    if (seq !== undefined) this.journal?.made(seq, made);
    this.stack.defer(name, async () => {
      await this.undoer(made, true);
      if (seq !== undefined) this.journal?.undone(seq);
    });
    return made;
  }

  /** Register an undo that needs no journal (the kernel undoes it if we die: private mounts). */
  defer(name: string, fn: () => Promise<void> | void): void {
    this.stack.defer(name, fn);
  }

  unwind(): Promise<CleanupFailure[]> {
    return this.stack.unwind();
  }
}
