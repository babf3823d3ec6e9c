// The recipe contract. A recipe turns a version and a few facts about the image into a TargetPlan:
// the complete description of one wheel build, printed by --dry-run and executed by the build.
// Recipes are pure (no file system, no processes), so every plan can be tested without root.
import type { Arch } from '../core/arch.js';
import { UsageError } from '../core/errors.js';

/** A target as written on the command line (targets/spec.ts parses it). */
export type TargetSpec =
  | { kind: 'recipe'; name: string; version?: string }
  | { kind: 'local'; path: string }
  | { kind: 'git'; url: string; ref: string };

export interface PlanOptions {
  /** Parallel compile jobs (MAX_JOBS, --parallel N). */
  jobs: number;
  /** The image's python3 as "major.minor", e.g. "3.11". */
  python: string;
  arch: Arch;
  /** Recipe options from the command line (ep=qnn, qnn_home=/opt/qairt, import=foo, ...). */
  recipeOptions?: Record<string, string>;
  /**
   * The cmake version the image's apt would install, when the caller knows it (see cmakeForRelease
   * in index.ts). Unknown counts as too old: recipes then take cmake from pip.
   */
  aptCmake?: string;
}

export type TargetSource =
  | { kind: 'git'; url: string; ref: string; submodules: boolean }
  /** A directory is copied to the source dir. A file (an sdist) is copied INTO an empty source dir
   *  under its base name; the recipe's commands refer to it as ./<base name>. */
  | { kind: 'path'; path: string };

/** A source as fetched on the host (build/sources.ts); the wheel cache fingerprints it. */
export interface FetchedSource {
  /** What was built: a path, or URL@REF with the commit. */
  origin: string;
  commit?: string;
  /** SOURCE_DATE_EPOCH from the source: the commit's time, else its newest file. */
  epoch?: number;
}

/** Top-level directories of a host checkout that are build output, not source (they may hold host objects). */
export const skippedTopLevel = ['build', 'dist'];

export interface TargetPlan {
  /** "torch@1.1.0", "local:/abs/path" or "git:URL@REF": the spec it came from, normalised. */
  id: string;
  /** Project/distribution name, e.g. "torch"; for local/git a guess until the wheel is built. */
  name: string;
  version?: string;
  source: TargetSource;
  /** Debian packages installed in the chroot (build overlay) before building. */
  apt: string[];
  /** pip requirements with pins, installed in the chroot before building. */
  pip: string[];
  env: Record<string, string>;
  /** argv lists, run in the source dir inside the chroot, in order. */
  commands: string[][];
  /** Where the wheel appears, relative to the source dir. */
  wheelDir: string;
  /** Module imported as the smoke test; without one, every top-level module the built wheel ships. */
  importName?: string;
  /**
   * The recipe's own check of a verified wheel: Python code run in the chroot with the wheel
   * unpacked on PYTHONPATH (after the import check, before any --test-command); it fails by raising.
   */
  smokeTest?: { what: string; python: string };
  /** Host directories bound read-only into the chroot for the build (a vendor SDK that stays on the host). */
  binds?: { source: string; inner: string; what: string }[];
  /** Members the wheel must have (regular expressions over member names), and why: checked in verification. */
  wheelMembers?: { pattern: string; why: string }[];
  /** Debian packages the board has installed (runtime=): their libraries count as the board's. */
  runtimeApt?: string[];
  /** Names of targets that must be built and installed first. */
  needs: string[];
  /**
   * Needs no target or --with-wheel provides (orderPlans fills it): met by the build environment,
   * the image's own or an apt package's (torch from python3-torch), checked before anything compiles.
   */
  fromEnvironment?: string[];
  /**
   * Debian packages to install as well when a need is met by a Debian package, by need (Debian's
   * python3-torch keeps its headers in libtorch-dev).
   */
  withDebianNeed?: Record<string, string[]>;
  /** For each need, the versions this target is known to work with (see pairingWarnings). */
  pairsWith: Record<string, string[]>;
  /** Estimate of workspace space the build needs (source + build tree + wheel). */
  diskBytes: number;
  /** Memory per parallel compile job under emulation. */
  memoryPerJobBytes: number;
  /** timeout= on the target: its build commands are stopped after this long. */
  timeout?: { ms: number; text: string };
  /** Facts a user should see in --dry-run. */
  notes: string[];
  /** Reasons this build may fail on this image (Python outside the known range, ...). */
  warnings: string[];
}

/** One row of a recipe's version table. Recipes extend it with their own columns. */
export interface VersionRule {
  /** The versions this row covers (the git tag without its leading v). */
  versions: string[];
  /** Python minor versions known to work, oldest and newest. */
  python: readonly [string, string];
  /** pip requirements with pins, for the build and for the smoke-test import. */
  pip: string[];
  /** Minimum cmake the build needs, when it uses cmake. */
  cmake?: string;
  /** Environment added for these versions only. */
  env?: Record<string, string>;
  /** Versions of needed targets known to pair (torchvision 0.4.0 -> { torch: ['1.2.0'] }). */
  pairs?: Record<string, string[]>;
  notes?: string[];
}

/** A recipe; `R` is its version table's row type, when it adds columns to VersionRule. */
export interface Recipe<R extends VersionRule = VersionRule> {
  name: string;
  /** One line for `imgbuild targets`. */
  describe: string;
  defaultVersion: string;
  versions: R[];
  /** Accepted recipeOptions, key -> what it does. */
  options?: Record<string, string>;
  plan(version: string, o: PlanOptions): TargetPlan;
}

export function knownVersions(rules: readonly VersionRule[]): string[] {
  return rules.flatMap((r) => r.versions);
}

/** The row for `version`, or a UsageError that names every known version. */
export function findRule<R extends VersionRule>(recipe: string, rules: readonly R[], version: string): R {
  const rule = rules.find((r) => r.versions.includes(version));
  if (rule) return rule;
  throw new UsageError(
    `unknown ${recipe} version ${version}`,
    `known ${recipe} versions: ${knownVersions(rules).join(', ')}; for another version use git:URL@REF`,
  );
}

/** Compares dotted numeric versions ("3.10" > "3.9"); non-numeric parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map((x) => Number.parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => Number.parseInt(x, 10) || 0);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return Math.sign(d);
  }
  return 0;
}

export function pythonInRange(python: string, range: readonly [string, string]): boolean {
  return compareVersions(python, range[0]) >= 0 && compareVersions(python, range[1]) <= 0;
}

/** A warning when the image's Python is outside the versions known to work, naming ones that fit. */
export function pythonWarnings(recipe: string, version: string, rules: readonly VersionRule[], python: string): string[] {
  const rule = findRule(recipe, rules, version);
  if (pythonInRange(python, rule.python)) return [];
  const fitting = rules.filter((r) => pythonInRange(python, r.python)).flatMap((r) => r.versions);
  const advice = fitting.length ? `versions known to work with Python ${python}: ${fitting.join(', ')}` : `no known ${recipe} version supports Python ${python}`;
  return [`${recipe} ${version} is known to build for Python ${rule.python[0]} to ${rule.python[1]}, the image has ${python}; ${advice}`];
}

/** When apt's cmake is unknown or older than `min`, take cmake from pip (it lands first on PATH). */
export function cmakeFromPip(min: string | undefined, o: PlanOptions): { pip: string[]; notes: string[] } {
  if (!min) return { pip: [], notes: [] };
  if (o.aptCmake && compareVersions(o.aptCmake, min) >= 0) return { pip: [], notes: [] };
  const why = o.aptCmake ? `the image's cmake ${o.aptCmake} is older than ${min}` : `the image's cmake version is unknown and ${min} is needed`;
  // CMake 4 refuses cmake_minimum_required below 3.5, which bundled dependencies still have (pytorch#150167, onnxruntime#23888).
  const notes = [`${why}: installing cmake>=${min},<4 from pip`];
  // PyPI's cmake has aarch64 and x86_64 wheels; elsewhere pip may compile cmake itself (slow under emulation).
  if (o.arch !== 'aarch64' && o.arch !== 'x86_64') notes.push(`pip may have no cmake wheel for ${o.arch} and build cmake from source, which is slow under emulation`);
  return { pip: [`cmake>=${min},<4`], notes };
}

/** Rejects recipe options the recipe does not know, naming the ones it does. */
export function checkOptions(recipe: string, known: Record<string, string> | undefined, given: Record<string, string> | undefined): Record<string, string> {
  const options = given ?? {};
  const allowed = Object.keys(known ?? {});
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) {
      throw new UsageError(
        `${recipe} has no option ${key}`,
        allowed.length ? `${recipe} options: ${allowed.map((k) => `${k} (${known![k]})`).join('; ')}` : `${recipe} takes no options`,
      );
    }
  }
  return options;
}

/** The jobs count as a positive integer string (env values and argv are strings). */
export function jobsArg(o: PlanOptions): string {
  if (!Number.isInteger(o.jobs) || o.jobs < 1) throw new UsageError(`jobs must be a positive integer, got ${o.jobs}`);
  return String(o.jobs);
}

/** The environment that hands the jobs count to setup.py, ninja and make through cmake. */
export function jobsEnv(jobs: string): { MAX_JOBS: string; CMAKE_BUILD_PARALLEL_LEVEL: string } {
  return { MAX_JOBS: jobs, CMAKE_BUILD_PARALLEL_LEVEL: jobs };
}
