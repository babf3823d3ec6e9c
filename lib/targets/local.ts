// Any Python project on the host: a source tree or an sdist tarball, built by its PEP 517 backend
// with the image's own setuptools (no build isolation: the chroot may have no index to fetch them from).
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { packageFile } from '../core/resources.js';
import { GiB, MiB } from '../core/units.js';
import { type PlanOptions, type TargetPlan, type TargetSource, checkOptions, jobsArg, jobsEnv } from './types.js';

export const projectOptions: Record<string, string> = {
  name: 'distribution name, when the directory name is not it (used by needs= of other targets)',
  import: 'module imported as the smoke test (default: every top-level module the built wheel ships)',
  needs: 'comma-separated names of targets to build and install first',
};

const sdist = /\.(tar\.gz|tgz|tar\.bz2|tar\.xz|zip)$/i;

export function isSdist(file: string): boolean {
  return sdist.test(file);
}

/** "foo-bar-1.2.tar.gz" -> { name: "foo-bar", version: "1.2" }; a directory name -> { name }. */
export function guessProject(base: string): { name: string; version?: string } {
  const stem = base.replace(sdist, '');
  const m = /^(.+?)-(\d[^-]*)$/.exec(stem);
  return m ? { name: m[1]!, version: m[2]! } : { name: stem };
}

/**
 * Where the build puts lib/build/build-wheel.py in the chroot: imgbuild's one-process PEP 517 front end,
 * which does what `pip wheel --no-deps --no-build-isolation -w DIR SOURCE` does without pip's own
 * start-up and its two extra Python processes (seconds each under qemu). It lives in the host
 * workspace, never in the image.
 */
export const wheelFrontend = '/workspace/.imgbuild/build-wheel.py';

/** The front end on the host (shipped beside dist/, as lib/accel/shim.c is). */
export const wheelFrontendSource = packageFile('lib/build/build-wheel.py');

/** The command that builds a project's wheel into `dir` (relative to the source directory). */
export function wheelCommand(source: string, dir = 'dist'): string[] {
  return ['python3', wheelFrontend, dir, source];
}

/** The command that lays a recipe's tarball source (./NAME) out in its source directory before the recipe's own commands. */
export function unpackCommand(archive: string): string[] {
  return ['python3', wheelFrontend, '--unpack', archive, '.'];
}

/** Whether a command is the front end's, which needs pip only to read pyproject.toml on a Python older than 3.11. */
export function isWheelFrontend(cmd: readonly string[]): boolean {
  return cmd[1] === wheelFrontend;
}

/** The plan shared by local: and git: targets. `what` names the recipe in errors. */
export function projectPlan(what: string, id: string, source: TargetSource, guess: { name: string; version?: string }, o: PlanOptions, extraOptions: Record<string, string> = {}): TargetPlan {
  const opts = checkOptions(what, { ...projectOptions, ...extraOptions }, o.recipeOptions);
  const name = opts.name ?? guess.name;
  if (!name) throw new UsageError(`cannot tell the project name of ${id}`, 'pass the recipe option name=NAME');
  const needs = (opts.needs ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const tarball = source.kind === 'path' && isSdist(source.path);
  const jobs = jobsArg(o);
  const notes = opts.name ? [] : [`the name ${name} is a guess from ${tarball ? 'the file' : 'the directory'} name (the project declares none that can be read before building); the build reads the real one from the wheel`];
  return {
    id,
    name,
    ...(guess.version ? { version: guess.version } : {}),
    source,
    apt: [],
    pip: [],
    env: jobsEnv(jobs),
    commands: [wheelCommand(tarball ? `./${path.basename(source.path)}` : '.')],
    wheelDir: 'dist',
    ...(opts.import ? { importName: opts.import } : {}),
    needs,
    pairsWith: {},
    diskBytes: 1 * GiB,
    memoryPerJobBytes: 512 * MiB,
    notes,
    warnings: [],
  };
}

/** local:PATH, PATH absolute (parseTargetSpec resolves it); the file system is checked by the build. */
export function planLocal(absPath: string, o: PlanOptions): TargetPlan {
  if (!path.isAbsolute(absPath)) throw new UsageError(`local path ${absPath} is not absolute`);
  const base = path.basename(absPath);
  if (/\.whl$/i.test(base)) throw new UsageError(`local:${absPath} is a wheel, not a source`, `install a ready wheel with --with-wheel ${absPath}`);
  return projectPlan('local', `local:${absPath}`, { kind: 'path', path: absPath }, guessProject(base), o);
}
