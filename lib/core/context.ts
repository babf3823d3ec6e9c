// The one object every stage receives: how to run processes, where to report, when to stop,
// and where imgbuild keeps its state and caches.
import path from 'node:path';
import { type Emit, silent } from './events.js';
import { shownPath } from './held-dir.js';
import { createRunner, type Run } from './runner.js';

/** Where journals and session directories live (a tmpfs: gone at reboot, as the loops are). */
export const defaultStateDir = '/run/imgbuild';

export interface Context {
  run: Run;
  emit: Emit;
  signal: AbortSignal;
  /** Journals and session directories (tmpfs: gone after a reboot, like what they describe). */
  stateDir: string;
  /** Sample images, sources, ccache, wheels. */
  cacheDir: string;
}

export const defaultCacheDir = '/var/cache/imgbuild';

export interface ContextOptions {
  emit?: Emit;
  signal?: AbortSignal;
  run?: Run;
  stateDir?: string;
  cacheDir?: string;
}

export function createContext(options: ContextOptions = {}): Context {
  const inner = options.emit ?? silent;
  const emit: Emit = (e) => inner('message' in e ? { ...e, message: shownPath(e.message) } : e);
  const signal = options.signal ?? new AbortController().signal;
  return {
    emit,
    signal,
    run: options.run ?? createRunner({ emit, signal }),
    stateDir: path.resolve(options.stateDir ?? process.env.IMGBUILD_STATE_DIR ?? defaultStateDir),
    cacheDir: path.resolve(options.cacheDir ?? process.env.IMGBUILD_CACHE_DIR ?? defaultCacheDir),
  };
}
