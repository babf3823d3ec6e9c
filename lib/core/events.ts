// What the library tells its caller; the CLI decides how to draw it (spinner, plain lines, JSON).

export type ImgbuildEvent =
  | { kind: 'stage'; phase: 'start'; name: string }
  | { kind: 'stage'; phase: 'end'; name: string; ms: number }
  | { kind: 'stage'; phase: 'fail'; name: string; ms: number; error: unknown }
  | { kind: 'cmd'; argv: readonly string[] }
  | { kind: 'undo'; step: string; ok: boolean; error?: unknown }
  | { kind: 'info'; message: string }
  /** Shown without --verbose: a decision the user should know about (not a problem). */
  | { kind: 'notice'; message: string }
  | { kind: 'warn'; message: string }
  | { kind: 'output'; line: string };

export type Emit = (event: ImgbuildEvent) => void;

export const silent: Emit = () => {};

/** Run `fn` as a named stage, reporting its start, end or failure with the time it took. */
export async function stage<T>(emit: Emit, name: string, fn: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  emit({ kind: 'stage', phase: 'start', name });
  try {
    const value = await fn();
    emit({ kind: 'stage', phase: 'end', name, ms: performance.now() - t0 });
    return value;
  } catch (error) {
    emit({ kind: 'stage', phase: 'fail', name, ms: performance.now() - t0, error });
    throw error;
  }
}
