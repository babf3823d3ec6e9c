// Build requirements the front end could not meet (it stops before the backend compiles anything
// and prints them as JSON after a marker line): the error names each one, what is installed, and
// the Debian package of the image's release that provides it, as the apt= to add.
import fs from 'node:fs';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { TargetPlan } from '../targets/index.js';
import type { BuiltWith } from '../wheel/index.js';
import { pinBreaks } from '../targets/pins.js';
import { wheelFrontend } from '../targets/local.js';
import type { Exec } from './types.js';
import type { BuildRun } from './run.js';
import { slug } from './workspace.js';

export interface Unmet {
  requirement: string;
  installed: string | null;
  why: string;
}

const marker = 'imgbuild-unmet-requirements: ';
const checkedMarker = 'imgbuild-checked-requirements: ';

/** Pure: the unmet requirements a front-end run reported, or undefined when it reported none. */
export function parseUnmet(output: string, prefix = marker): Unmet[] | undefined {
  const line = output.split('\n').reverse().find((l) => l.startsWith(prefix));
  if (!line) return undefined;
  try {
    const list = JSON.parse(line.slice(prefix.length)) as Unmet[];
    return Array.isArray(list) ? list : undefined;
  } catch {
    return undefined;
  }
}

/** Pure: the project name a PEP 508 requirement names ("Cython>=3; python_version>'3'" -> "Cython"). */
export function requirementName(req: string): string {
  return /^\s*([A-Za-z0-9][A-Za-z0-9._-]*)/.exec(req)?.[1] ?? req.trim();
}

// Debian names most Python distributions python3-<name>; a few are known by other names
// (bookworm ships flit_core inside flit; trixie splits it out as python3-flit-core).
const debianNames: Record<string, string[]> = {
  cython: ['cython3'],
  pybind11: ['pybind11-dev', 'python3-pybind11'],
  'scikit-build': ['python3-skbuild'],
  'flit-core': ['python3-flit-core', 'flit'],
  'meson-python': ['python3-mesonpy'],
  maturin: ['python3-maturin', 'maturin'],
  pillow: ['python3-pil'],
  pyyaml: ['python3-yaml'],
  'python-dateutil': ['python3-dateutil'],
  'opencv-python': ['python3-opencv'],
  'scikit-learn': ['python3-sklearn'],
  beautifulsoup4: ['python3-bs4'],
  pyzmq: ['python3-zmq'],
  torch: ['python3-torch'],
};

/** Pure: the Debian packages that may provide a Python distribution, most likely first. */
export function aptCandidates(name: string): string[] {
  const n = name.toLowerCase().replace(/[_.]+/g, '-');
  return [...new Set([...(debianNames[n] ?? []), `python3-${n}`])];
}

/** Pure: the packages `apt-cache policy` knows a candidate version of. */
export function aptAvailable(policy: string): Set<string> {
  const found = new Set<string>();
  for (const block of policy.split(/\n(?=\S)/)) {
    const name = /^(\S+):/.exec(block)?.[1];
    const candidate = /^\s+Candidate:\s*(\S+)/m.exec(block)?.[1];
    if (name && candidate && candidate !== '(none)') found.add(name);
  }
  return found;
}

/**
 * The PreconditionError for requirements a front-end run could not meet, after asking the
 * image's apt which packages would provide them (apt's lists are fetched first if the image has none).
 */
export async function unmetError(id: string, unmet: Unmet[], o: { exec: Exec; buildRoot: string; log: string }): Promise<PreconditionError> {
  const names = unmet.map((u) => requirementName(u.requirement));
  const candidates = [...new Set(names.flatMap(aptCandidates))];
  if (!hasAptLists(o.buildRoot)) await o.exec(['apt-get', 'update'], { env: { DEBIAN_FRONTEND: 'noninteractive' }, log: o.log });
  const policy = await o.exec(['apt-cache', 'policy', ...candidates], { log: o.log });
  const available = aptAvailable(policy.all);
  const apt: string[] = [];
  const lines = unmet.map((u, i) => {
    const pkg = aptCandidates(names[i]!).find((c) => available.has(c));
    if (pkg && !apt.includes(pkg)) apt.push(pkg);
    const breaks = pinBreaks(u.requirement);
    return `  - ${u.requirement}: ${u.why}${breaks ? ` (the build cannot do without it: ${breaks})` : ''}${pkg ? `; the image's apt has ${pkg}` : ''}`;
  });
  const hint = apt.length > 0 ? `add them from the image's apt: --target ${id},apt=${apt.join('+')}; or let pip fetch them (without --offline, or --find-links DIR holding them)` : 'let pip fetch them (without --offline, or --find-links DIR holding them), or install them in the image first';
  return new PreconditionError(`${id}: build requirements not met (checked before anything was compiled):\n${lines.join('\n')}`, `${hint}; full log: ${o.log}`);
}

function hasAptLists(root: string): boolean {
  const r = resolveInRoot(root, '/var/lib/apt/lists');
  return r.type === 'dir' && fs.readdirSync(r.host).some((f) => f.endsWith('_Packages'));
}

/** Where the front end installs a target's missing build requirements, inside the chroot (the workspace). */
export function buildReqsInner(t: TargetPlan): string {
  return `/workspace/.imgbuild/reqs/${slug(t)}`;
}

/** Where the front end reports the build requirements it met, inside the chroot. */
export function buildReportInner(t: TargetPlan): string {
  return `${buildReqsInner(t)}.json`;
}

/**
 * The front end's report, read from the build tree (the chroot's to write: read inside it,
 * never through a link, and only a small regular file). Undefined when there is none.
 */
export function readBuildReport(buildDir: string, t: TargetPlan): BuiltWith[] | undefined {
  const r = resolveInRoot(buildDir, buildReportInner(t).slice('/workspace'.length));
  if (r.type !== 'file') return undefined;
  try {
    const fd = fs.openSync(r.host, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
    let text: string;
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile() || st.size > 1024 * 1024) return undefined;
      text = fs.readFileSync(fd, 'utf8');
    } finally {
      fs.closeSync(fd);
    }
    const list = JSON.parse(text) as BuiltWith[];
    if (!Array.isArray(list)) return undefined;
    return list.filter((e) => typeof e?.requirement === 'string').map((e) => ({
      requirement: e.requirement,
      version: typeof e.version === 'string' ? e.version : null,
      from: e.from === 'workspace' || e.from === 'program' ? e.from : 'image',
      ...(e.from === 'program' && typeof e.path === 'string' ? { path: e.path } : {}),
    }));
  } catch {
    return undefined;
  }
}

/** What the build environment misses of `pins` (the front end's --check: nothing is installed). */
export async function checkPins(chroot: { exec: Exec }, pins: string[], log: string): Promise<Unmet[]> {
  const r = await chroot.exec(['python3', wheelFrontend, '--check', ...pins], { log });
  return parseUnmet(r.all, checkedMarker) ?? [];
}

/**
 * --offline: the Debian packages of the image's apt that provide the targets' pip requirements
 * the image does not have at all (numpy -> python3-numpy). apt's lists must be current.
 */
export async function aptForMissingPins(exec: Exec, pins: string[], log: string): Promise<{ missing: string[]; apt: string[] }> {
  if (pins.length === 0) return { missing: [], apt: [] };
  const missing = (await checkPins({ exec }, pins, log)).filter((u) => u.installed === null && !u.why.startsWith('needed by')).map((u) => requirementName(u.requirement));
  if (missing.length === 0) return { missing, apt: [] };
  const policy = await exec(['apt-cache', 'policy', ...new Set(missing.flatMap(aptCandidates))], { log });
  const available = aptAvailable(policy.all);
  const apt = missing.map((n) => aptCandidates(n).find((c) => available.has(c))).filter((p): p is string => p !== undefined);
  return { missing, apt: [...new Set(apt)] };
}

/**
 * --offline: a recipe pin the installed version misses is waived with a warning naming both
 * (the build goes on with what the image has), unless the pin is one the build cannot do
 * without. Returns the pins still to install (those nothing provides yet).
 */
export async function waivePins(run: BuildRun, chroot: { exec: Exec }, t: TargetPlan, log: string): Promise<string[]> {
  if (t.pip.length === 0) return [];
  const unmet = await checkPins(chroot, t.pip, log);
  const waived = unmet.filter((u) => u.installed !== null && !pinBreaks(u.requirement));
  for (const u of waived) {
    run.ctx.emit({ kind: 'warn', message: `${t.id}: the recipe pins ${u.requirement}, the image has ${u.installed}; --offline, so the build goes on with ${u.installed}` });
  }
  // The rest go to pip (a --find-links wheel may meet them); what it cannot install, unmetError names.
  const wanted = new Set(unmet.filter((u) => !waived.includes(u) && !u.why.startsWith('needed by')).map((u) => u.requirement));
  return t.pip.filter((p) => wanted.has(p));
}
