// Fault injection for the leftovers suite: IMGBUILD_FAULT=<step>:<kill9|sigint|sigterm|throw>
// acts when the session reaches that named step. Steps are listed by `imgbuild faults`.
import { StepError } from './errors.js';

export const faultSteps = [
  'lock',
  'attach',
  'mount:root',
  'mount:boot',
  'mount:proc',
  'mount:sys',
  'mount:dev',
  'mount:run',
  'mount:tmp',
  'mount:workspace',
  'resolv',
  'policy-rc.d',
  'binfmt',
  'chroot',
  'teardown:processes',
  'teardown:umount',
  'teardown:binfmt',
  'teardown:detach',
  'teardown:unlock',
  'build:fetch',
  'build:compile',
  'build:verify',
  'grow:check',
  'grow:resize',
] as const;

export type FaultStep = (typeof faultSteps)[number];
export type FaultAction = 'kill9' | 'sigint' | 'sigterm' | 'throw';

export function parseFault(spec: string | undefined): { step: string; action: FaultAction } | undefined {
  if (!spec) return undefined;
  const i = spec.lastIndexOf(':');
  const step = spec.slice(0, i);
  const action = spec.slice(i + 1) as FaultAction;
  if (i < 0 || !['kill9', 'sigint', 'sigterm', 'throw'].includes(action)) return undefined;
  return { step, action };
}

/** Called at each named step; does nothing unless IMGBUILD_FAULT names this step. */
export function checkpoint(step: FaultStep): void {
  const fault = parseFault(process.env.IMGBUILD_FAULT);
  if (!fault || fault.step !== step) return;
  // Fire once: the unwinding that follows must run undisturbed.
  delete process.env.IMGBUILD_FAULT;
  switch (fault.action) {
    case 'kill9':
      process.kill(process.pid, 'SIGKILL');
      break;
    case 'sigint':
      process.kill(process.pid, 'SIGINT');
      break;
    case 'sigterm':
      process.kill(process.pid, 'SIGTERM');
      break;
    case 'throw':
      throw new StepError(`injected fault at ${step}`);
  }
}
