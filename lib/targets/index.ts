// Targets: what can be built and how. One recipe a project (torch, torchvision, onnx,
// onnxruntime), each a version table plus a small pure plan() that turns a version and a few facts
// about the image into a TargetPlan (source, apt and pip packages, environment, commands); local:
// and git: targets for any other Python project; target specs as written on the command line.
// Here: spec -> plan, plans in dependency order, pairing checks, and the data `imgbuild targets`
// prints. Plans are pure (no file system, no processes), so every one can be tested without root.
import { UsageError } from '../core/errors.js';
import { gitOptions, planGit } from './git.js';
import { applyCommon, splitOptions } from './common-options.js';
import { isWheelFrontend, planLocal, projectOptions } from './local.js';
import { recipeNames, recipes } from './registry.js';
import type { PlanOptions, TargetPlan, TargetSpec, VersionRule } from './types.js';

export type { PlanOptions, Recipe, TargetPlan, TargetSource, VersionRule } from './types.js';
export { recipeNames, recipes } from './registry.js';

/** The plan of one target: its recipe's (or project's) own, with the options every target takes applied. */
export function planTarget(spec: TargetSpec, o: PlanOptions): TargetPlan {
  const { common, own } = splitOptions(specLabel(spec), o.recipeOptions);
  const plan = planOwn(spec, { ...o, recipeOptions: own });
  return applyCommon(plan, common, plan.commands.some(isWheelFrontend));
}

function specLabel(spec: TargetSpec): string {
  return spec.kind === 'recipe' ? `${spec.name}${spec.version ? `@${spec.version}` : ''}` : spec.kind === 'local' ? `local:${spec.path}` : `git:${spec.url}@${spec.ref}`;
}

function planOwn(spec: TargetSpec, o: PlanOptions): TargetPlan {
  switch (spec.kind) {
    case 'recipe': {
      const recipe = recipes[spec.name];
      if (!recipe) throw new UsageError(`unknown recipe ${spec.name}`, `known recipes: ${recipeNames().join(', ')}; or local:PATH, git:URL@REF`);
      return recipe.plan(spec.version ?? recipe.defaultVersion, o);
    }
    case 'local':
      return planLocal(spec.path, o);
    case 'git':
      return planGit(spec.url, spec.ref, o);
  }
}

/** PEP 503 normalisation, so needs: ['imgbuild_hello'] matches a target named imgbuild-hello. */
export function normalizeName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

/**
 * Plans in build order: every target after the targets it needs, otherwise in the order given.
 * `provided` names needs a --with-wheel supplies; a need nothing here provides is recorded in the
 * plan's fromEnvironment. Throws UsageError on a duplicate or a cycle.
 */
export function orderPlans(given: TargetPlan[], provided: string[] = []): TargetPlan[] {
  let plans = given;
  const byName = new Map<string, TargetPlan>();
  for (const plan of plans) {
    const key = normalizeName(plan.name);
    const other = byName.get(key);
    if (other) throw new UsageError(`two targets build ${plan.name}: ${other.id} and ${plan.id}`, 'keep one of them');
    byName.set(key, plan);
  }
  const supplied = new Set(provided.map(normalizeName));
  for (const [key, plan] of byName) {
    if (supplied.has(key)) throw new UsageError(`${plan.name} is both built (${plan.id}) and supplied by --with-wheel`, `drop --target ${plan.id} or the --with-wheel for ${plan.name}`);
  }

  // A recipe's need nothing here provides is left to the build environment (checked in the
  // chroot); a needs= the user wrote for a local: or git: target names a target, or is a mistake.
  for (const [key, plan] of byName) {
    const missing = plan.needs.filter((n) => !supplied.has(normalizeName(n)) && !byName.has(normalizeName(n)));
    if (missing.length > 0 && /^(local|git):/.test(plan.id)) throw new UsageError(`${plan.id} needs ${missing[0]}, which no target builds`, needHint(plan, missing[0]!));
    if (missing.length > 0) byName.set(key, fromEnvironment(plan, missing));
  }
  plans = plans.map((p) => byName.get(normalizeName(p.name))!);

  const ordered: TargetPlan[] = [];
  const state = new Map<TargetPlan, 'visiting' | 'done'>();
  const visit = (plan: TargetPlan, path: TargetPlan[]): void => {
    const s = state.get(plan);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(plan)), plan].map((p) => p.id);
      throw new UsageError(`targets need each other: ${cycle.join(' -> ')}`, 'a target cannot need itself, directly or through others; check their needs');
    }
    state.set(plan, 'visiting');
    for (const need of plan.needs) {
      const key = normalizeName(need);
      if (supplied.has(key) || plan.fromEnvironment?.includes(need)) continue;
      visit(byName.get(key)!, [...path, plan]);
    }
    state.set(plan, 'done');
    ordered.push(plan);
  };
  for (const plan of plans) visit(plan, []);
  return ordered;
}

function fromEnvironment(plan: TargetPlan, needs: string[]): TargetPlan {
  const notes = needs.map((n) => `${n}: no target or --with-wheel provides it, so the build environment must (the image's, an apt= package's, or with --offline the image's apt); checked before anything is compiled`);
  return { ...plan, fromEnvironment: needs, notes: [...plan.notes, ...notes] };
}

/** What to do about a need that neither a target, a --with-wheel nor the build environment provides. */
export function needHint(plan: TargetPlan, need: string): string {
  const paired = plan.pairsWith[need]?.[0];
  const target = paired ? `${need}@${paired}` : recipes[need] ? need : `local:PATH (the ${need} project)`;
  return `add --target ${target}, --with-wheel PATH (a ${need} wheel), or apt=PKG for a Debian package that installs it (with --offline the image's apt is asked for python3-${need})`;
}

// "1.2.0a0+abc", "1.2.0+cpu", "1.2.0.post1" -> "1.2.0".
function release(version: string): string {
  return /^\d+(\.\d+)*/.exec(version)?.[0] ?? version;
}

/**
 * Messages for needs whose version is not one the target is known to pair with, e.g. torchvision
 * 0.6.0 over torch 1.1.0. `provided` are the wheels given with --with-wheel.
 */
export function pairingWarnings(plans: TargetPlan[], provided: { name: string; version: string }[] = []): string[] {
  const versions = new Map<string, { version: string; from: string }>();
  for (const w of provided) versions.set(normalizeName(w.name), { version: w.version, from: `the --with-wheel ${w.name} ${w.version}` });
  for (const p of plans) if (p.version) versions.set(normalizeName(p.name), { version: p.version, from: p.id });
  const out: string[] = [];
  for (const plan of plans) {
    for (const [need, known] of Object.entries(plan.pairsWith)) {
      const got = versions.get(normalizeName(need));
      if (!got || known.length === 0) continue;
      if (!known.some((k) => release(k) === release(got.version))) {
        out.push(`${plan.id} is made for ${need} ${known.join(' or ')}, but ${got.from} provides ${need} ${got.version}`);
      }
    }
  }
  return out;
}

/** cmake from apt, by the VERSION_CODENAME of os-release (Debian, Raspberry Pi OS, Ubuntu). */
export const aptCmakeByCodename: Record<string, string> = {
  buster: '3.13.4',
  bullseye: '3.18.4',
  bookworm: '3.25.1',
  trixie: '3.31.6',
  bionic: '3.10.2',
  focal: '3.16.3',
  jammy: '3.22.1',
  noble: '3.28.3',
};

export function cmakeForRelease(codename: string | undefined): string | undefined {
  return codename ? aptCmakeByCodename[codename.toLowerCase()] : undefined;
}

export interface RecipeListing {
  name: string;
  /** How to write it on the command line. */
  spec: string;
  describe: string;
  defaultVersion?: string;
  versions: string[];
  options: Record<string, string>;
  /** The recipe's version table, for a detailed listing. */
  table: VersionRule[];
}

export function listRecipes(): RecipeListing[] {
  const listed: RecipeListing[] = Object.values(recipes).map((r) => ({
    name: r.name,
    spec: `${r.name}[@VERSION]`,
    describe: r.describe,
    defaultVersion: r.defaultVersion,
    versions: r.versions.flatMap((v) => v.versions),
    options: { ...r.options },
    table: r.versions,
  }));
  listed.push(
    { name: 'local', spec: 'local:PATH', describe: 'a Python project directory or sdist tarball on the host, built as pip wheel would (PEP 517, no build isolation)', versions: [], options: { ...projectOptions }, table: [] },
    { name: 'git', spec: 'git:URL@REF', describe: 'a Python project in a git repository at a tag, branch or commit, built as pip wheel would (PEP 517, no build isolation)', versions: [], options: { ...projectOptions, ...gitOptions }, table: [] },
  );
  return listed;
}
