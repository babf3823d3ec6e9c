// The wheel cache key: sha256 over the canonical JSON of everything a wheel build depends on that
// imgbuild can name before building. Its bytes must never change without a new wheelCacheFormat.
import crypto from 'node:crypto';
import fs from 'node:fs';
import { verificationLevel } from './verify.js';
import { isWheelFrontend, wheelFrontendSource } from '../targets/local.js';

/** Part of every key: bump it when the key's inputs or the entry layout change. */
export const wheelCacheFormat = 1;

/** The jobs count a plan is made with for its key, so --jobs (MAX_JOBS, --parallel N) does not change it. */
export const keyJobs = 1;

/**
 * Everything a wheel build depends on that imgbuild can name before building. Deliberately NOT
 * part of the key: --jobs (plan env and commands with jobs = keyJobs), --accel (the compiler
 * identity stands for the compiler actually used), --out, --workspace, --attach, --persist, the
 * image's path (its content counts), file times and owners in the source. Not captured either:
 * what apt and pip would fetch for unpinned packages today versus when the entry was made.
 */
export interface WheelKeyParts {
  /** sha256 of the image (imageIdentity). */
  image: string;
  arch: string;
  /** The image's python, "3.11". */
  python: string;
  /** --python's interpreter when it is not /usr/bin/python3 (absent from the key otherwise: keys stay as they were). */
  interpreter?: string;
  /** TargetPlan.id and .version. */
  target: string;
  targetVersion?: string;
  /** TargetPlan.env and .commands, from a plan made with jobs = keyJobs. */
  env: Record<string, string>;
  commands: string[][];
  pip: string[];
  /** apt packages installed in the build layer before the build (order does not count). */
  apt: string[];
  /** sha256 (or cache key) of each wheel installed before this build: the needs' wheels, --with-wheel wheels (order does not count). */
  needs: string[];
  /** sourceFingerprint(). */
  source: string;
  /**
   * The compiler: version and target defaults (e.g. `gcc -v` with its "Configured with" line).
   * Equal strings must mean equal objects: a host cross compiler shares a key with the chroot's
   * native one only when both say the same.
   */
  compiler: string;
}

let frontendHash: string | undefined;

// sha256 of lib/build/build-wheel.py: the commands name the front end, this stands for what it does.
function wheelFrontendHash(): string {
  frontendHash ??= crypto.createHash('sha256').update(fs.readFileSync(wheelFrontendSource)).digest('hex');
  return frontendHash;
}

function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value && typeof value === 'object') {
    const entries = Object.entries(value).filter(([, v]) => v !== undefined).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

/** sha256 (hex) over the canonical JSON of the parts and the cache format. */
export function wheelCacheKey(parts: WheelKeyParts): string {
  if (!/^[0-9a-f]{64}$/.test(parts.image)) throw new Error(`wheel cache key: image ${parts.image} is not a sha256`);
  // Picked field by field: a caller passing a wider object (a plan, the request) adds nothing.
  const keyed = {
    format: wheelCacheFormat,
    image: parts.image,
    arch: parts.arch,
    python: parts.python,
    interpreter: parts.interpreter,
    target: parts.target,
    targetVersion: parts.targetVersion ?? null,
    env: parts.env,
    commands: parts.commands,
    frontend: parts.commands.some(isWheelFrontend) ? wheelFrontendHash() : null,
    pip: parts.pip,
    apt: [...parts.apt].sort(),
    needs: [...parts.needs].sort(),
    source: parts.source,
    compiler: parts.compiler,
    verification: verificationLevel,
  };
  return crypto.createHash('sha256').update(canonicalJson(keyed)).digest('hex');
}
