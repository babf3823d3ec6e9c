import type { Argv } from 'yargs';
import { faultSteps } from '../../lib/index.js';

export const command = 'faults';
export const describe = 'List the named steps IMGBUILD_FAULT=<step>:<kill9|sigint|sigterm|throw> can act at (for tests)';

export function builder(y: Argv) {
  return y;
}

export function handler() {
  process.stdout.write(`${faultSteps.join('\n')}\n`);
}
