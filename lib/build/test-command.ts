// --test-command: the user's own check of a verified wheel, run in the chroot with the wheel
// unpacked in a throwaway place on PYTHONPATH (as cibuildwheel's test-command, without a venv).
// {wheel} and {project} in the command name the wheel and the project's source tree there.
import path from 'node:path';
import { StepError, tailLines } from '../core/errors.js';
import type { Session } from '../session/index.js';
import type { TargetPlan } from '../targets/index.js';
import { slug } from './workspace.js';

// One emulated process unpacks, runs the command and removes the copy.
const runner = [
  'import os, shutil, subprocess, sys, zipfile',
  'whl, dest, cmd = sys.argv[1:4]',
  'shutil.rmtree(dest, ignore_errors=True)',
  'zipfile.ZipFile(whl).extractall(dest)',
  'env = dict(os.environ, PYTHONPATH=os.pathsep.join([dest] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))',
  'try:',
  '    code = subprocess.call(["sh", "-c", cmd], env=env, cwd="/tmp")',
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
  const r = await s.exec(['python3', '-c', runner, o.inner, `/tmp/imgbuild-test-${slug(t)}`, cmd], { cwd: '/tmp', logFile: o.log, allowFailure: true, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.exitCode !== 0) {
    throw new StepError(`${t.id}: --test-command failed with exit code ${r.exitCode} for ${path.basename(file)}:\n${tailLines(r.all, 30)}`, `the wheel was not copied to --out; full log: ${o.log}`);
  }
}
