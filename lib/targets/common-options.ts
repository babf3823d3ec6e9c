// What every target may ask for, recipe or project, after commas on --target (and, for all
// targets at once, as --apt, --env, --config-setting, --runtime-apt): Debian packages for the
// build layer, environment variables, PEP 517 config settings, extra pip requirements, and the
// Debian packages the board has installed. Parsed and checked here, before anything runs.
import { errorMessage, UsageError } from '../core/errors.js';
import { parseDuration } from '../core/units.js';
import type { TargetPlan } from './types.js';

export const commonOptions: Record<string, string> = {
  apt: 'Debian packages installed in the build layer first, joined by + (apt=libffi-dev+pkg-config)',
  env: 'NAME=VALUE in the build environment; repeat env= for more',
  config: 'a PEP 517 config setting KEY=VALUE for the build backend; repeat config= for more',
  pip: 'extra Python requirements for the build, joined by + (pip=cython<3+numpy)',
  runtime: 'Debian packages the board has installed, joined by +: their libraries count as the board\'s in verification',
  smoke: 'off skips the recipe\'s smoke test (one that needs what the build host cannot give); the import check still runs',
  timeout: 'stop this target\'s build after this long (90s, 45m, 2h): its processes are killed and the build fails, undone',
};

export interface CommonOptions {
  apt: string[];
  env: Record<string, string>;
  config: Record<string, string | string[]>;
  pip: string[];
  runtime: string[];
  smokeOff: boolean;
  timeout?: { ms: number; text: string };
}

/** The environment variable that hands config settings to the wheel front end (JSON). */
export const configSettingsVar = 'IMGBUILD_CONFIG_SETTINGS';

const debianPackage = /^[a-z0-9][a-z0-9+.-]+(:[a-z0-9]+)?$/;

/** Splits a target's options into the common ones (parsed) and the recipe's own. */
export function splitOptions(id: string, options: Record<string, string> = {}): { common: CommonOptions; own: Record<string, string> } {
  const own: Record<string, string> = {};
  const common: CommonOptions = { apt: [], env: {}, config: {}, pip: [], runtime: [], smokeOff: false };
  for (const [key, value] of Object.entries(options)) {
    if (key === 'apt' || key === 'runtime') common[key] = packages(id, key, value);
    else if (key === 'pip') common.pip = plusList(value);
    else if (key === 'env') common.env = envPairs(id, value);
    else if (key === 'config') common.config = configPairs(id, value);
    else if (key === 'smoke') common.smokeOff = smokeSwitch(id, value);
    else if (key === 'timeout') common.timeout = targetTimeout(id, value);
    else own[key] = value;
  }
  return { common, own };
}

/** The plan with the common options applied: they come after what the recipe chose, and win. */
export function applyCommon(plan: TargetPlan, c: CommonOptions, usesFrontend: boolean): TargetPlan {
  if (Object.keys(c.config).length > 0 && !usesFrontend) {
    throw new UsageError(`${plan.id}: config= is for targets built by a PEP 517 backend (local:, git:, onnx); this recipe runs its own build commands`, 'set what the build reads with env=NAME=VALUE instead');
  }
  if (c.smokeOff && !plan.smokeTest) {
    throw new UsageError(`${plan.id}: smoke=off, but this target has no smoke test of its own`, 'leave smoke= out; the import check always runs');
  }
  const env = { ...plan.env, ...c.env };
  if (Object.keys(c.config).length > 0) env[configSettingsVar] = JSON.stringify(c.config);
  const extra = [...c.apt, ...c.runtime].filter((p) => !plan.apt.includes(p));
  return {
    ...plan,
    apt: [...plan.apt, ...new Set(extra)],
    env,
    pip: [...plan.pip, ...c.pip.filter((p) => !plan.pip.includes(p))],
    ...(c.runtime.length > 0 ? { runtimeApt: c.runtime } : {}),
    ...(c.smokeOff ? withoutSmokeTest(plan) : {}),
    ...(c.timeout ? { timeout: c.timeout } : {}),
  };
}

function withoutSmokeTest(plan: TargetPlan): Partial<TargetPlan> {
  return { smokeTest: undefined, warnings: [...plan.warnings, `smoke=off: the recipe's smoke test (${plan.smokeTest!.what}) is not run; the import check is`] };
}

function targetTimeout(id: string, value: string): { ms: number; text: string } {
  try {
    return { ms: parseDuration(value), text: value };
  } catch (error) {
    throw new UsageError(`${id}: timeout=${errorMessage(error)}`, 'e.g. timeout=45m');
  }
}

function smokeSwitch(id: string, value: string): boolean {
  if (value !== 'off' && value !== 'on') throw new UsageError(`${id}: smoke=${value}: expected off or on`, 'smoke=off skips the recipe\'s smoke test');
  return value === 'off';
}

function plusList(value: string): string[] {
  return value.split('+').map((s) => s.trim()).filter(Boolean);
}

function packages(id: string, key: string, value: string): string[] {
  const list = plusList(value);
  const bad = list.filter((p) => !debianPackage.test(p));
  if (list.length === 0 || bad.length > 0) {
    throw new UsageError(`${id}: ${key}=${value}: ${bad.length ? `${bad.map((b) => `"${b}"`).join(', ')} is not a Debian package name` : 'no package given'}`, `give package names joined by +, e.g. ${key}=libffi-dev+pkg-config`);
  }
  return list;
}

// Repeated env= values arrive joined by commas: a comma starts a new pair only before NAME=.
function envPairs(id: string, value: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const pair of value.split(/,(?=[A-Za-z_][A-Za-z0-9_]*=)/)) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.*)$/s.exec(pair);
    if (!m) throw new UsageError(`${id}: env=${pair} is not NAME=VALUE`, 'e.g. env=SETUPTOOLS_SCM_PRETEND_VERSION=1.2.0; repeat env= for more');
    if (m[1]!.startsWith('IMGBUILD_')) throw new UsageError(`${id}: env=${pair}: IMGBUILD_ variables are imgbuild's own`, 'choose another name');
    env[m[1]!] = m[2]!;
  }
  return env;
}

function configPairs(id: string, value: string): Record<string, string | string[]> {
  const config: Record<string, string | string[]> = {};
  for (const pair of value.split(/,(?=[^=,]+=)/)) {
    const m = /^([^=,\s][^=,]*)=(.*)$/s.exec(pair);
    if (!m) throw new UsageError(`${id}: config=${pair} is not KEY=VALUE`, 'e.g. config=--build-option=--cpp_ext; repeat config= for more');
    const [key, v] = [m[1]!, m[2]!];
    const had = config[key];
    config[key] = had === undefined ? v : [...(Array.isArray(had) ? had : [had]), v];
  }
  return config;
}
