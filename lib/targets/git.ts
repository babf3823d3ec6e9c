// Any Python project in a git repository at a given ref; otherwise built like local: targets.
import { UsageError } from '../core/errors.js';
import { guessProject, projectPlan } from './local.js';
import type { PlanOptions, TargetPlan } from './types.js';

export const gitOptions: Record<string, string> = { submodules: 'clone submodules too: true (default) or false' };

/** "https://host/a/b.git", "git@host:a/b.git", "/srv/b" -> "b". */
export function repoName(url: string): string {
  const last = url.replace(/[/:]+$/, '').split(/[/:]/).pop() ?? '';
  return last.replace(/\.git$/, '');
}

export function planGit(url: string, ref: string, o: PlanOptions): TargetPlan {
  const sub = o.recipeOptions?.submodules ?? 'true';
  if (sub !== 'true' && sub !== 'false') throw new UsageError(`git option submodules=${sub} is not true or false`);
  return projectPlan('git', `git:${url}@${ref}`, { kind: 'git', url, ref, submodules: sub === 'true' }, { name: guessProject(repoName(url)).name }, o, gitOptions);
}
