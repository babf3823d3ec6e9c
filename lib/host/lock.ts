// A held flock for host-side state that is not an image (a workspace, a source cache): a
// `flock --no-fork FILE sh` child keeps it while its stdin pipe from us is open, so the kernel
// releases it however imgbuild ends, even by kill -9.
import fs from 'node:fs';
import type { Context } from '../core/context.js';
import { CommandError, PreconditionError } from '../core/errors.js';
import { lockHolder } from './namespace.js';
import { start } from '../core/runner.js';

const conflict = 75;

export interface HeldLock {
  release(): Promise<void>;
}

/**
 * Take an exclusive lock on `file` (with `shared`, one many users may hold, which an exclusive one
 * waits out), or fail at once: with `onConflict`'s error, or one naming the holder. A missing lock
 * file is created; an existing file (an image) is only opened.
 */
export async function holdLock(ctx: Context, file: string, what: string, onConflict?: () => Error, o: { shared?: boolean } = {}): Promise<HeldLock> {
  if (!fs.existsSync(file)) fs.closeSync(fs.openSync(file, 'a', 0o600));
  // start() puts the holder in its own process group; it also ignores the signals, so nothing but
  // the end of its stdin (our release, or our death) ends it.
  const holder = start(ctx.emit, 'flock', [o.shared ? '--shared' : '--exclusive', '--nonblock', '--conflict-exit-code', String(conflict), '--no-fork', file, 'sh', '-c', "trap '' INT TERM HUP; echo ready; read -r _; exit 0"]);
  try {
    await holder.waitForLine((l) => l === 'ready');
  } catch (error) {
    const r = await holder.exited;
    if (r.exitCode === conflict) {
      if (onConflict) throw onConflict();
      const who = lockHolder(file);
      throw new PreconditionError(`${what} is in use by another imgbuild (${who ? `process ${who.pid}` : 'unknown process'})`, 'wait for it to finish, or pick another directory');
    }
    throw error;
  }
  return {
    async release() {
      holder.closeStdin();
      const r = await holder.exited;
      if (r.exitCode !== 0) throw new CommandError(`lock holder for ${what} (flock)`, r.exitCode, r.all);
    },
  };
}
