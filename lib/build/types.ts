// The build verb's public types: the request, the plan --dry-run and --json print, the result.
import type { AccelRequest } from '../accel/index.js';
import type { RunResult } from '../core/runner.js';
import type { AttachStrategy } from '../host/attach.js';
import type { ImageFacts } from '../session/index.js';
import type { TargetPlan } from '../targets/index.js';
import type { Manifest } from '../wheel/index.js';
import type { PipSources, ResolvedPip } from './pip-sources.js';

export type { PipSources } from './pip-sources.js';

/** Runs a command in the build's chroot with pip's and the compiler acceleration's env, its output to `log`. */
export type Exec = (argv: string[], o: { env?: Record<string, string>; cwd?: string; log: string }) => Promise<RunResult>;

export interface BuildRequest {
  image: string;
  /** --target values: SPEC[,KEY=VALUE...]. */
  targets: string[];
  /** --out (default ./dist). */
  out: string;
  /** --workspace; default: a directory under the cache, emptied at the next run. */
  workspace?: string;
  jobs: number | 'auto';
  /** --source NAME=PATH. */
  sources: string[];
  /** --with-wheel PATH. */
  withWheels: string[];
  persist: boolean;
  dryRun: boolean;
  /** --accel and friends (default: auto). */
  accel?: AccelRequest;
  /** Memory limit for the build's commands in bytes; 0: none; default: what the host can spare. */
  memoryLimit?: number;
  /** Processes the build's commands may have at once (--pids-limit); 0: none; default defaultPidsLimit. */
  pidsLimit?: number;
  /** Answer from the wheel cache when every input matches an earlier verified build (default true). */
  wheelCache?: boolean;
  attach?: AttachStrategy | 'auto';
  allowBlockDevice?: boolean;
  /** Relative paths are resolved against this (default: process.cwd()). */
  cwd?: string;
  /** For every target (each target's own options come after, and win): --apt, --env, --config-setting, --runtime-apt. */
  apt?: string[];
  env?: string[];
  configSettings?: string[];
  runtimeApt?: string[];
  /** --test-command: run in the chroot after the import check, with the wheel installed in a throwaway place. */
  testCommand?: string;
  /** Where Python packages come from (see PipSources). */
  pip?: PipSources;
  /** --privileged: build code keeps every capability and may gain privileges (the box is open). */
  privileged?: boolean;
  /** --python PATH: the image's interpreter to build for and with (default /usr/bin/python3). */
  python?: string;
}


/** One host step of the build session and its undo, for --dry-run. */
export interface PlannedStep {
  step: string;
  undo: string;
}

export interface BuildPlan {
  image: string;
  mode: 'overlay' | 'persist';
  facts: Pick<ImageFacts, 'arch' | 'os' | 'python' | 'glibc' | 'wheelTag' | 'attach'>;
  jobs: number;
  /** The compiler acceleration the build will use, and why (decided again after apt installs). */
  accel: string;
  workspace: string;
  out: string;
  /** apt packages installed in the chroot before building, with the reason for each added one. */
  apt: string[];
  aptReasons: string[];
  hostSteps: PlannedStep[];
  targets: TargetPlan[];
  withWheels: { path: string; name: string; version: string }[];
  /** Where pip looks (flags, else the host's pip settings), on the host and in the chroot. */
  pipSources: ResolvedPip;
  /** --test-command, run after each wheel's import check. */
  testCommand?: string;
  warnings: string[];
}

export interface BuildResult {
  plan: BuildPlan;
  manifest?: Manifest;
}
