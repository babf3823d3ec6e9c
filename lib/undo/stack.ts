// The only cleanup mechanism: a LIFO stack of named undo steps. Every step runs even when an
// earlier one fails; failures are gathered and reported by step name.
import type { CleanupFailure } from '../core/errors.js';
import type { Emit } from '../core/events.js';

interface Step {
  name: string;
  fn: () => Promise<void> | void;
}

export class UndoStack {
  private steps: Step[] = [];

  constructor(private readonly emit?: Emit) {}

  /** Register the undo of something that just succeeded. */
  defer(name: string, fn: () => Promise<void> | void): void {
    this.steps.push({ name, fn });
  }

  get size(): number {
    return this.steps.length;
  }

  /** Names of the pending steps, in the order they would run. */
  pending(): string[] {
    return this.steps.map((s) => s.name).reverse();
  }

  /** Hand every pending step to a new owner; this stack becomes empty. */
  move(): UndoStack {
    const other = new UndoStack(this.emit);
    other.steps = this.steps;
    this.steps = [];
    return other;
  }

  /** Run only the newest `n` steps now (undo something that turned out not to be needed). */
  async unwindTop(n: number): Promise<CleanupFailure[]> {
    const top = new UndoStack(this.emit);
    top.steps = this.steps.splice(Math.max(0, this.steps.length - n));
    return top.unwind();
  }

  /** Steps of the last unwind that failed once and then succeeded when retried. */
  recovered: CleanupFailure[] = [];

  /**
   * Run every step, newest first; then retry once, in the same order, each step that failed (what
   * held it may be gone now that the later steps ran). Returns the failures that remain.
   */
  async unwind(): Promise<CleanupFailure[]> {
    const failed: { step: Step; error: unknown }[] = [];
    while (this.steps.length > 0) {
      const step = this.steps.pop()!;
      try {
        await step.fn();
        this.emit?.({ kind: 'undo', step: step.name, ok: true });
      } catch (error) {
        failed.push({ step, error });
        this.emit?.({ kind: 'undo', step: step.name, ok: false, error });
      }
    }
    const failures: CleanupFailure[] = [];
    this.recovered = [];
    for (const { step, error } of failed) {
      try {
        await step.fn();
        this.recovered.push({ step: step.name, error });
        this.emit?.({ kind: 'undo', step: `${step.name} (retried)`, ok: true });
      } catch (again) {
        failures.push({ step: step.name, error: again });
        this.emit?.({ kind: 'undo', step: `${step.name} (retried)`, ok: false, error: again });
      }
    }
    return failures;
  }
}
