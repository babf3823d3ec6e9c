// Sources are fetched and copied on the host, at native speed, before anything is mounted: a
// directory or sdist from the host, or a git checkout from a clone cache reused across runs.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { CommandError, PreconditionError } from '../core/errors.js';
import { holdLock } from '../host/lock.js';
import { isSdist } from '../targets/local.js';
import { type FetchedSource, skippedTopLevel, type TargetSource } from '../targets/types.js';
import { sourceEpoch } from './source-epoch.js';

export type { FetchedSource } from '../targets/types.js';

// Markers of a Python project a build backend can build.
const projectFiles = ['pyproject.toml', 'setup.py', 'setup.cfg'];


/** Throws a PreconditionError unless `p` is a Python project directory or an sdist tarball. */
export function checkProjectPath(p: string, what: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(p);
  } catch {
    throw new PreconditionError(`${what}: ${p} does not exist`, 'give the path of a Python project directory or an sdist (.tar.gz, .zip)');
  }
  if (st.isDirectory()) {
    if (!projectFiles.some((f) => fs.existsSync(path.join(p, f)))) {
      throw new PreconditionError(`${what}: ${p} is not a Python project (no ${projectFiles.join(', ')})`, 'point at the directory that holds setup.py or pyproject.toml');
    }
    return;
  }
  if (st.isFile() && isSdist(p)) return;
  throw new PreconditionError(`${what}: ${p} is neither a project directory nor an sdist tarball`, 'give a directory with setup.py or pyproject.toml, or a .tar.gz/.zip sdist');
}


/**
 * Put the source of one target into the empty directory `dest` on the host. A directory is
 * copied without its top-level build/ and dist/ (host build output); an sdist is copied into it.
 */
export async function fetchSource(ctx: Context, source: TargetSource, dest: string, o: { offline?: boolean } = {}): Promise<FetchedSource> {
  fs.mkdirSync(dest, { recursive: true });
  if (source.kind === 'path') {
    const st = fs.statSync(source.path);
    if (st.isDirectory()) await copyTree(ctx, source.path, dest, skippedTopLevel);
    else await ctx.run('cp', ['--reflink=auto', '--preserve=mode,timestamps', source.path, path.join(dest, path.basename(source.path))]);
    return { origin: source.path, epoch: await sourceEpoch(ctx, { path: source.path, skip: skippedTopLevel }) };
  }
  const repo = await updateGitCache(ctx, source.url, source.ref, source.submodules, o);
  await copyTree(ctx, repo.dir, dest, []);
  return { origin: `${source.url}@${source.ref}`, commit: repo.commit, epoch: await sourceEpoch(ctx, { path: repo.dir, gitDir: repo.dir, commit: repo.commit }) };
}

async function copyTree(ctx: Context, from: string, to: string, skip: string[]): Promise<void> {
  const entries = fs.readdirSync(from).filter((n) => !skip.includes(n));
  if (entries.length === 0) return;
  await ctx.run('cp', ['-a', '--reflink=auto', '--', ...entries.map((n) => path.join(from, n)), `${to}/`]);
}

const gitEnv = { GIT_TERMINAL_PROMPT: '0', GIT_ASKPASS: 'true' };

/** The cache directory of a repository URL. */
export function gitCacheDir(cacheDir: string, url: string): string {
  const base = url.replace(/[/:]+$/, '').split(/[/:]/).pop()?.replace(/\.git$/, '').replace(/[^A-Za-z0-9._-]/g, '_') || 'repo';
  const hash = crypto.createHash('sha256').update(url).digest('hex').slice(0, 12);
  return path.join(cacheDir, 'git', `${base}-${hash}`);
}

/**
 * Clone (first time) or fetch (later) `url` into the cache, check out `ref` with its submodules
 * and return the working tree. The cache is locked while it is used.
 */
export async function updateGitCache(ctx: Context, url: string, ref: string, submodules: boolean, o: { offline?: boolean } = {}): Promise<{ dir: string; commit: string }> {
  const dir = gitCacheDir(ctx.cacheDir, url);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const lock = await holdLock(ctx, `${dir}.lock`, `the source cache ${dir}`);
  // file: URLs only where the user named one (git: of a local repository): a repository's own
  // .gitmodules must not pull a host-local repository into the build ('user' is git's own policy).
  const git = (args: string[], allowFailure = false) => ctx.run('git', ['-c', 'protocol.file.allow=user', '-C', dir, ...args], { env: gitEnv, allowFailure });
  try {
    if (!fs.existsSync(path.join(dir, '.git')) && o.offline) {
      throw new PreconditionError(`--offline: ${url} is not in the source cache`, 'build it once with the network, or give a local checkout with --source NAME=PATH');
    } else if (!fs.existsSync(path.join(dir, '.git'))) {
      fs.rmSync(dir, { recursive: true, force: true });
      const r = await ctx.run('git', ['-c', 'protocol.file.allow=user', 'clone', '--no-checkout', url, dir], { env: gitEnv, allowFailure: true });
      if (r.exitCode !== 0) {
        fs.rmSync(dir, { recursive: true, force: true });
        throw new PreconditionError(`cannot clone ${url}: ${lastLine(r.all)}`, 'check the URL and the network; on a machine without access use --source NAME=PATH with a local checkout');
      }
    } else if (!o.offline) {
      const r = await git(['fetch', '--force', '--tags', 'origin', '+refs/heads/*:refs/remotes/origin/*'], true);
      if (r.exitCode !== 0) ctx.emit({ kind: 'warn', message: `could not update ${url} (${lastLine(r.all)}); using the cached clone` });
    }
    const commit = (await resolveRef(git, ref)) ?? '';
    if (!commit) throw new PreconditionError(`${url} has no tag, branch or commit ${ref}`, 'check the ref (git ls-remote URL lists tags and branches)');
    await git(['checkout', '--force', '--detach', commit]);
    await git(['clean', '-ffdxq']);
    if (submodules) {
      await git(['submodule', 'sync', '--recursive']);
      try {
        await git(['submodule', 'update', '--init', '--recursive', '--force']);
      } catch (error) {
        throw new PreconditionError(`cannot fetch the submodules of ${url}@${ref}: ${error instanceof CommandError ? lastLine(error.output) : String(error)}`, 'check the network, or use --source NAME=PATH with a checkout that has its submodules');
      }
    }
    return { dir, commit };
  } finally {
    await lock.release();
  }
}

async function resolveRef(git: (args: string[], allowFailure?: boolean) => Promise<{ exitCode: number; stdout: string }>, ref: string): Promise<string | undefined> {
  for (const candidate of [`refs/tags/${ref}`, `refs/remotes/origin/${ref}`, ref]) {
    const r = await git(['rev-parse', '--verify', '--quiet', `${candidate}^{commit}`], true);
    if (r.exitCode === 0 && r.stdout.trim()) return r.stdout.trim();
  }
  return undefined;
}

function lastLine(text: string): string {
  return text.trim().split('\n').pop() ?? '';
}

/**
 * Download pip requirements on the host into `dest` (wheels for the image's platform where they
 * exist, sdists otherwise), so the emulated chroot installs them from there. Best effort: what
 * the host cannot fetch, the chroot's pip fetches itself. Returns the requirements not fetched.
 */
export async function prefetchPip(ctx: Context, requirements: string[], dest: string, image: { python: string; wheelMachine: string }, sources: string[] = []): Promise<string[]> {
  if (requirements.length === 0) return [];
  const probe = await ctx.run('python3', ['-m', 'pip', '--version'], { allowFailure: true, quiet: true });
  if (probe.exitCode !== 0) return requirements;
  fs.mkdirSync(dest, { recursive: true });
  const common = ['-m', 'pip', 'download', '--dest', dest, '--no-deps', '--disable-pip-version-check', '--no-input', '--timeout', '20', '--retries', '1', ...sources];
  const platform = ['--only-binary=:all:', '--implementation', 'cp', '--python-version', image.python, '--platform', `linux_${image.wheelMachine}`, '--platform', `manylinux2014_${image.wheelMachine}`, '--platform', 'any'];
  const missed: string[] = [];
  for (const req of requirements) {
    const binary = await ctx.run('python3', [...common, ...platform, req], { allowFailure: true });
    if (binary.exitCode === 0) continue;
    const sdist = await ctx.run('python3', [...common, '--no-binary=:all:', req], { allowFailure: true });
    if (sdist.exitCode !== 0) missed.push(req);
  }
  return missed;
}
