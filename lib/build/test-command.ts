// Checks of a verified wheel run in the chroot with the wheel unpacked in a throwaway place on
// PYTHONPATH (as cibuildwheel's test-command, without a venv): a recipe's smoke test, then the
// user's --test-command ({wheel} and {project} in it name the wheel and the project's tree there).
import path from 'node:path';
import { StepError, tailLines } from '../core/errors.js';
import type { Session } from '../session/index.js';
import type { TargetPlan } from '../targets/index.js';
import { slug } from './workspace.js';

// One emulated process unpacks, runs the command and removes the copy.
const runner = [
  'import os, shutil, subprocess, sys, zipfile',
  'whl, dest = sys.argv[1:3]',
  'shutil.rmtree(dest, ignore_errors=True)',
  'zipfile.ZipFile(whl).extractall(dest)',
  'env = dict(os.environ, PYTHONPATH=os.pathsep.join([dest] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))',
  'try:',
  '    code = subprocess.call(sys.argv[3:], env=env, cwd="/tmp")',
  'finally:',
  '    shutil.rmtree(dest, ignore_errors=True)',
  'sys.exit(code)',
].join('\n');

/** Pure: the command with {wheel} and {project} put in. */
export function expandTestCommand(command: string, wheel: string, project: string): string {
  return command.replaceAll('{wheel}', wheel).replaceAll('{project}', project);
}

export async function runTestCommand(s: Session, file: string, t: TargetPlan, o: { command: string; inner: string; project: string; log: string }): Promise<void> {
  const cmd = expandTestCommand(o.command, o.inner, o.project);
  await runWithWheel(s, file, t, ['sh', '-c', cmd], { log: o.log, inner: o.inner, failed: '--test-command failed' });
}

/** The recipe's smoke test (TargetPlan.smokeTest), when it has one. */
export async function runSmokeTest(s: Session, file: string, t: TargetPlan, o: { inner: string; log: string }): Promise<void> {
  if (!t.smokeTest) return;
  await runWithWheel(s, file, t, ['python3', '-c', t.smokeTest.python], { log: o.log, inner: o.inner, failed: `the recipe's smoke test (${t.smokeTest.what}) failed` });
}

async function runWithWheel(s: Session, file: string, t: TargetPlan, argv: string[], o: { inner: string; log: string; failed: string }): Promise<void> {
  const r = await s.exec(['python3', '-c', runner, o.inner, `/tmp/imgbuild-test-${slug(t)}`, ...argv], { cwd: '/tmp', logFile: o.log, allowFailure: true, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.exitCode !== 0) {
    throw new StepError(`${t.id}: ${o.failed} with exit code ${r.exitCode} for ${path.basename(file)}:\n${tailLines(r.all, 30)}`, `the wheel was not copied to --out; full log: ${o.log}`);
  }
}
