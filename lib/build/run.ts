// The one object the build's stages share: the request as checked, the image, the plan, and
// what the run has made so far (workspace dirs, fetched sources, cache keys and hits, manifest).
import type { HeldDir, Owner } from '../core/held-dir.js';
import type { AccelDecision } from '../accel/index.js';
import type { Context } from '../core/context.js';
import type { ImageFacts } from '../session/index.js';
import type { TargetArg } from '../targets/spec.js';
import type { TargetPlan } from '../targets/index.js';
import type { Manifest, ManifestWheel, WheelLookup, WheelName } from '../wheel/index.js';
import type { FetchedSource } from './sources.js';
import type { ResolvedPip } from './pip-sources.js';
import type { BuildPlan, BuildRequest } from './types.js';

export interface SuppliedWheel {
  path: string;
  name: WheelName;
}

/** The request once checked: parsed targets, --source paths, --with-wheel files, resolved dirs. */
export interface Inputs {
  args: TargetArg[];
  sources: Map<string, string>;
  wheels: SuppliedWheel[];
  out: string;
  workspace: string;
  defaultWorkspace: boolean;
  /** Where Python packages come from (flags, else the host's pip settings). */
  pip: ResolvedPip;
}

export interface ImageInfo {
  facts: ImageFacts;
  python: string;
  hasPip: boolean;
  hasCc: boolean;
  hasCxx: boolean;
  /** The accel decision for the image as it is (undefined: it has no gcc yet; decided after apt). */
  accel?: AccelDecision;
}

/** A target's env and commands as planned with keyJobs: --jobs does not change a wheel's cache key. */
export interface KeyInputs {
  env: Record<string, string>;
  commands: string[][];
}

/** What the stages before anything is mounted know. */
export interface Planned {
  ctx: Context;
  req: BuildRequest;
  inputs: Inputs;
  image: ImageInfo;
  plan: BuildPlan;
  keyInputs: Map<TargetPlan, KeyInputs>;
}

export type CacheHit = Extract<WheelLookup, { kind: 'hit' }>;

/** --out held by its descriptor (build/output.ts): its logs/ and who owns it (the files written there are given to them). */
export interface OutDir {
  dir: HeldDir;
  logs: HeldDir;
  owner: Owner;
}

/** A build under way: made with its fresh workspace, filled in by the stages that follow. */
export interface BuildRun extends Planned {
  /** The build tree (bound at /workspace), the overlay's upper layer, and --out's logs/. */
  /** build: bound at /workspace; upper: the overlay's; staged: wheels taken out of the chroot's reach. */
  dirs: { build: string; upper: string; logs: string; staged: string };
  /** --out held by its descriptor, its logs/ and its owner. */
  out: OutDir;
  fetched: Map<TargetPlan, FetchedSource>;
  keys: Map<TargetPlan, string>;
  hits: Map<TargetPlan, CacheHit>;
  /** Its image's sha256 is '' until the image is identified (with --persist: hashed at the end). */
  manifest: Manifest;
  /** The manifest's wheels so far; the manifest is written again after each. */
  written: ManifestWheel[];
}
