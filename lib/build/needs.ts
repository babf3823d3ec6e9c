// Needs the build environment meets (TargetPlan.fromEnvironment: torchvision's torch from the
// image, or from Debian's python3-torch installed for the build), and the Debian packages whose
// libraries the board has: runtime= packages and the apt packages that brought such a need, each
// with the packages it depends on.
import { PreconditionError } from '../core/errors.js';
import { needHint, type TargetPlan } from '../targets/index.js';
import { wheelFrontend } from '../targets/local.js';
import type { BuildRun } from './run.js';
import { checked } from './step-error.js';
import type { Exec } from './types.js';

const foundMarker = 'imgbuild-installed-distributions: ';

/** A need met by the build environment: its version, and the apt package of the build that installed it. */
export interface EnvironmentNeed {
  version: string;
  /** Set when the package was installed for this build (so the board needs it too). */
  aptPackage?: string;
}

/** Pure: the installed distributions the front end's --where reported. */
export function parseWhere(output: string): Record<string, { version: string; path: string }> {
  const line = output.split('\n').reverse().find((l) => l.startsWith(foundMarker));
  try {
    return line ? (JSON.parse(line.slice(foundMarker.length)) as Record<string, { version: string; path: string }>) : {};
  } catch {
    return {};
  }
}

/**
 * Every target's fromEnvironment needs, looked up in the chroot before anything is compiled: a
 * missing one stops the build (exit 3) naming the ways to provide it; one an apt package of this
 * build installed is the board's to have too. `aptInstalled` lists the packages this build installed.
 */
export async function checkEnvironmentNeeds(run: BuildRun, exec: Exec, aptInstalled: string[], log: string): Promise<Map<string, EnvironmentNeed>> {
  const out = new Map<string, EnvironmentNeed>();
  const wanted = run.plan.targets.filter((t) => t.fromEnvironment?.length);
  if (wanted.length === 0) return out;
  const names = [...new Set(wanted.flatMap((t) => t.fromEnvironment!))];
  const found = parseWhere((await exec(['python3', wheelFrontend, '--where', ...names], { log })).all);
  for (const t of wanted) {
    for (const need of t.fromEnvironment!) {
      if (!found[need]) throw new PreconditionError(`${t.id} needs ${need}: no target or --with-wheel provides it, and the build environment does not have it`, needHint(t, need));
    }
  }
  const companions: string[] = [];
  for (const name of names) {
    const where = found[name]!;
    // "python3-torch: /usr/lib/python3/dist-packages/torch-1.13.0a0+git.egg-info" (the first owner, when several).
    const owner = where.path ? ownerOf((await exec(['dpkg-query', '-S', where.path], { log })).all, where.path) : undefined;
    out.set(name, { version: where.version, ...(owner && aptInstalled.includes(owner) ? { aptPackage: owner } : {}) });
    if (owner) companions.push(...wanted.flatMap((t) => t.withDebianNeed?.[name] ?? []));
  }
  await installCompanions(run, exec, [...new Set(companions)], log);
  for (const t of wanted) for (const w of pairingWarning(t, out)) run.ctx.emit({ kind: 'warn', message: w });
  return out;
}

// The packages a need from Debian wants beside it (libtorch-dev for python3-torch), when dpkg lacks them.
async function installCompanions(run: BuildRun, exec: Exec, pkgs: string[], log: string): Promise<void> {
  if (pkgs.length === 0) return;
  const have = await exec(['dpkg-query', '-W', '-f', '${Package} ${db:Status-Abbrev}\\n', ...pkgs], { log });
  const missing = pkgs.filter((p) => !new RegExp(`^${p.replace(/[.+]/g, '\\$&')} ii`, 'm').test(have.all));
  if (missing.length === 0) return;
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  run.ctx.emit({ kind: 'notice', message: `the build environment's ${missing.length === 1 ? 'need comes' : 'needs come'} from Debian: installing ${missing.join(' ')} beside it` });
  let r = await exec(['apt-get', 'install', '-y', '--no-install-recommends', ...missing], { env, log });
  if (r.exitCode !== 0) {
    await exec(['apt-get', 'update'], { env, log });
    r = await exec(['apt-get', 'install', '-y', '--no-install-recommends', ...missing], { env, log });
  }
  await checked(r, { what: `apt-get install ${missing.join(' ')}`, log, hint: 'a package name may not exist in this release' });
}

/** Pure: the package dpkg-query -S names for `file` (the first, when several own it), in output that may hold other lines. */
export function ownerOf(output: string, file: string): string | undefined {
  const line = output.split('\n').find((l) => l.endsWith(`: ${file}`) && !l.startsWith('diversion '));
  return line?.slice(0, line.length - file.length - 2).split(',')[0]?.trim() || undefined;
}

// "1.13.0a0+git7c98e70" -> "1.13.0".
const release = (v: string) => /^\d+(\.\d+)*/.exec(v)?.[0] ?? v;

function pairingWarning(t: TargetPlan, found: Map<string, EnvironmentNeed>): string[] {
  return t.fromEnvironment!.flatMap((need) => {
    const known = t.pairsWith[need] ?? [];
    const got = found.get(need)!;
    if (known.length === 0 || known.some((k) => release(k) === release(got.version))) return [];
    return [`${t.id} is made for ${need} ${known.join(' or ')}, but the build environment has ${need} ${got.version}${got.aptPackage ? ` (from ${got.aptPackage})` : ''}; building against it`];
  });
}

/** Pure: `pkgs` and every installed package they depend on (dpkg-query -W -f '${Package}\t${Depends}, ${Pre-Depends}\n'). */
export function dependencyClosure(status: string, pkgs: string[]): string[] {
  const deps = new Map<string, string[]>();
  for (const line of status.split('\n')) {
    const [name, rest] = line.split('\t');
    if (!name || rest === undefined) continue;
    // Each alternative that is installed counts ("libblas3 | libblas.so.3"); versions and arch qualifiers go.
    deps.set(name.trim(), rest.split(/[,|]/).map((d) => d.trim().replace(/\s*\(.*\)$/, '').replace(/:\S+$/, '')).filter(Boolean));
  }
  const seen = new Set<string>();
  const todo = [...pkgs];
  while (todo.length > 0) {
    const p = todo.pop()!;
    if (seen.has(p) || (!deps.has(p) && !pkgs.includes(p))) continue;
    seen.add(p);
    todo.push(...(deps.get(p) ?? []));
  }
  return [...seen];
}
