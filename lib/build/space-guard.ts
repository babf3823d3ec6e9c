// Stopping a build from outside: a runaway build (a test that writes forever, a log loop) must
// not fill the host's disk, so while it runs the workspace's filesystem is watched, and when its
// free space falls below a reserve every process of the build is killed; a target's timeout=
// does the same when its time is up. The build step then fails saying why.
import fs from 'node:fs';
import { human } from '../core/units.js';

/** Pure: the space kept free on a filesystem of `size` bytes: 5% of it, at least 64 MiB, at most 1 GiB. */
export function spaceReserve(size: number): number {
  return Math.min(1 << 30, Math.max(64 << 20, Math.floor(size * 0.05)));
}

export interface SpaceGuard {
  /** Set once the guard stopped the build: what was free and the reserve. */
  readonly tripped: { free: number; reserve: number; dir: string } | undefined;
  stop(): void;
}

/** Processes whose root directory is `rootHost` (by device and inode): a session's commands in the image. */
export function processesRootedAt(rootHost: string): number[] {
  const root = fs.statSync(rootHost);
  const pids: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = fs.statSync(`/proc/${name}/root`);
      if (st.dev === root.dev && st.ino === root.ino) pids.push(Number(name));
    } catch {
      // gone, or a kernel thread
    }
  }
  return pids;
}

/**
 * Watch the filesystem of `dir` every `everyMs` (a statfs, 4 times a second by default); below
 * the reserve, kill every process rooted at `rootHost` (the build in the image) and remember why.
 * `stop()` ends the watch.
 */
export function guardSpace(dir: string, rootHost: string, o: { everyMs?: number; reserve?: number; onTrip?: (line: string) => void } = {}): SpaceGuard {
  let tripped: SpaceGuard['tripped'];
  const check = () => {
    if (tripped) return;
    let free: number;
    let size: number;
    try {
      const s = fs.statfsSync(dir);
      free = s.bavail * s.bsize;
      size = s.blocks * s.bsize;
    } catch {
      return;
    }
    const reserve = o.reserve ?? spaceReserve(size);
    if (free >= reserve) return;
    tripped = { free, reserve, dir };
    o.onTrip?.(`the workspace's filesystem (${dir}) is down to ${human(free)} free, below its ${human(reserve)} reserve: stopping the build`);
    killRootedAt(rootHost);
  };
  const timer = setInterval(check, o.everyMs ?? 250);
  timer.unref();
  return {
    get tripped() {
      return tripped;
    },
    stop: () => clearInterval(timer),
  };
}

/** Kill every process rooted at `rootHost` (the build in the image); the caller says why. */
export function killRootedAt(rootHost: string): void {
  for (const pid of processesRootedAt(rootHost)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // exited
    }
  }
}

/** A target's timeout=: after `ms`, its build in the image is killed; `expired` says whether that happened. */
export function targetTimer(ms: number, rootHost: string, onExpire: () => void): { readonly expired: boolean; stop(): void } {
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    onExpire();
    killRootedAt(rootHost);
  }, ms);
  timer.unref();
  return {
    get expired() {
      return expired;
    },
    stop: () => clearTimeout(timer),
  };
}
