// A held flock for host-side state that is not an image (a workspace, a source cache): a
// `flock --no-fork FILE sh` child keeps it while its stdin pipe from us is open, so the kernel
// releases it however imgbuild ends, even by kill -9.
import fs from 'node:fs';
import type { Context } from './context.js';
import { PreconditionError } from './errors.js';
import { lockHolder } from './namespace.js';
import { start } from './runner.js';

const conflict = 75;

export interface HeldLock {
  release(): Promise<void>;
}

/** Take an exclusive lock on `file` (created if missing), or fail at once naming who holds it. */
export async function holdLock(ctx: Context, file: string, what: string): Promise<HeldLock> {
  fs.closeSync(fs.openSync(file, 'a', 0o600));
  const holder = start(ctx.emit, 'flock', ['--exclusive', '--nonblock', '--conflict-exit-code', String(conflict), '--no-fork', file, 'sh', '-c', 'echo ready; read -r _; exit 0']);
  try {
    await holder.waitForLine((l) => l === 'ready');
  } catch (error) {
    const r = await holder.exited;
    if (r.exitCode === conflict) {
      const who = lockHolder(file);
      throw new PreconditionError(`${what} is in use by another imgbuild (${who ? `process ${who.pid}` : 'unknown process'})`, 'wait for it to finish, or pick another directory');
    }
    throw error;
  }
  return {
    async release() {
      holder.closeStdin();
      await holder.exited;
    },
  };
}
