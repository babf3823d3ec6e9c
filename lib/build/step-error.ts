// The error a failed build step gets: which target, how the command ended, the likely cause
// (out of memory, a full disk), the last lines of its output and where the full log is.
import { StepError, tailLines } from '../core/errors.js';
import { human } from '../core/units.js';
import type { MemoryCgroup } from '../host/cgroup.js';
import type { PidsLimit } from '../host/pids.js';
import type { SpaceGuard } from './space-guard.js';

export interface StepCheck {
  /** The command as the message names it. */
  what: string;
  log: string;
  hint?: string;
  /** The target id the message starts with. */
  target?: string;
  /** What can stop a build step from outside, to say which did: see BuildLimits. */
  limits?: BuildLimits;
}

/** The build's limits and watchers, read when a step fails to name what stopped it. */
export interface BuildLimits {
  /** The memory cgroup and --jobs: an out-of-memory kill. */
  cgroup?: MemoryCgroup;
  jobs: number;
  /** --pids-limit: forks refused. */
  pids?: PidsLimit;
  /** The workspace's space guard. */
  space?: SpaceGuard;
  /** The session's namespace holder: killed from outside, it takes every process with it. */
  holder?: { exited: boolean };
  /** The target's timeout=. */
  timeout?: { text: string; timer: { expired: boolean } };
}

/** Throws the StepError a failed build step deserves: target, exit code, the last 30 lines, the log. */
export async function checked(r: { exitCode: number; all: string; signal?: string }, o: StepCheck): Promise<void> {
  if (r.exitCode === 0) return;
  const how = r.signal ? `was killed by ${r.signal}` : `failed with exit code ${r.exitCode}`;
  const killed = r.signal === 'SIGKILL' || r.exitCode === 137 || /Killed signal terminated program|fatal error: Killed/.test(r.all);
  let oom = killed ? ' (killed: out of memory? try a smaller --jobs)' : '';
  // Not memory: the session's namespace holder was killed, and every process of the session with it.
  if (killed && o.limits?.holder?.exited) oom = ' (killed with the whole session: its namespace holder process was killed from outside imgbuild)';
  const memory = o.limits;
  if (memory?.cgroup?.oomKilled()) {
    const fewer = Math.max(1, Math.floor(memory.jobs / 2));
    oom = ` (ran out of memory: the build hit its ${human(memory.cgroup.limitBytes)} limit with --jobs ${memory.jobs} and the kernel killed a build process; ${memory.jobs > 1 ? `try --jobs ${fewer}` : 'it needs more memory than this host can spare: free memory or raise --memory-limit'})`;
  }
  const pids = memory?.pids && memory.pids.hits() > 0 ? ` (the build hit its limit of ${memory.pids.max} processes and forks were refused; if it really needs more, raise --pids-limit)` : '';
  const low = memory?.space?.tripped;
  const late = memory?.timeout?.timer.expired ? ` (stopped after its timeout=${memory.timeout.text}: its processes were killed; give it more time with timeout=)` : '';
  const guarded = late || (low ? ` (stopped: the workspace's filesystem ${low.dir} fell to ${human(low.free)} free, below the ${human(low.reserve)} imgbuild keeps; free space there, or give --workspace DIR on a larger filesystem)` : '');
  const tail = tailLines(r.all, 30);
  const full = /No space left on device|Disk quota exceeded/.test(r.all) ? ' (no space left on device: the workspace, or with --persist the image, is full; free space, use --workspace DIR elsewhere, or imgbuild grow IMAGE +SIZE)' : '';
  throw new StepError(`${o.target ? `${o.target}: ` : ''}${o.what} ${how}${guarded || `${oom}${pids}${full}`}\n--- last lines of ${o.log} ---\n${tail}`, `${o.hint ? `${o.hint}; ` : ''}full log: ${o.log}`);
}
