// Tests that need a host tool are skipped, visibly and with the reason in the title, when it is missing.
import fs from 'node:fs';
import path from 'node:path';
import test, { type ExecutionContext } from 'ava';

const onPath = (tool: string) => (process.env['PATH'] ?? '').split(':').some((d) => d && fs.existsSync(path.join(d, tool)));

/** `test`, or `test.skip` with "(skipped: TOOL not on this host)" in the title. */
export function needs(...tools: string[]) {
  const missing = tools.filter((tool) => !onPath(tool));
  return unless(missing.length === 0 ? undefined : `${missing.join(', ')} not on this host`);
}

/** `test`, or, when there is a reason it cannot run here, `test.skip` with "(skipped: REASON)" in the title. */
export function unless(reason: string | undefined) {
  return (title: string, fn: (t: ExecutionContext) => void | Promise<void>) => (reason === undefined ? test(title, fn) : test.skip(`${title} (skipped: ${reason})`, fn));
}
