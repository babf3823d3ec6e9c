// The opening every recipe's plan() shares: its options checked, its version's row, the jobs
// count, cmake from pip when apt's is too old, and the warnings about the image's Python.
import { type PlanOptions, type Recipe, type VersionRule, checkOptions, cmakeFromPip, findRule, jobsArg, pythonWarnings } from './types.js';

/** What a recipe's plan() starts from. */
export interface PlanStart<R extends VersionRule> {
  /** The recipe options given (each one the recipe knows). */
  opts: Record<string, string>;
  /** The version table's row for the version. */
  rule: R;
  /** The jobs count as a string (jobsArg). */
  jobs: string;
  /** cmake from pip when the rule needs a newer cmake than apt's (cmakeFromPip). */
  cmake: { pip: string[]; notes: string[] };
  /** For TargetPlan.warnings: the image's Python outside the range the row knows (pythonWarnings). */
  warnings: string[];
}

/** Checks the options, then the version, then the jobs count (throwing UsageError in that order). */
export function startPlan<R extends VersionRule>(recipe: Pick<Recipe<R>, 'name' | 'versions' | 'options'>, version: string, o: PlanOptions): PlanStart<R> {
  const opts = checkOptions(recipe.name, recipe.options, o.recipeOptions);
  const rule = findRule(recipe.name, recipe.versions, version);
  const jobs = jobsArg(o);
  return { opts, rule, jobs, cmake: cmakeFromPip(rule.cmake, o), warnings: pythonWarnings(recipe.name, version, recipe.versions, o.python) };
}
