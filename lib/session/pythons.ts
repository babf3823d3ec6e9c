// The Python interpreters an image holds, read from its files (nothing runs): the system's
// /usr/bin/python3, a Python built into /usr/local, and virtual environments and conda prefixes
// where boards keep them (PYNQ 3's /usr/local/share/pynq-venv, /opt/conda, /root/miniconda3).
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import { pythonAbi } from '../wheel/index.js';

export interface Interpreter {
  /** The path a command runs (inside the image), e.g. /usr/local/share/pynq-venv/bin/python3. */
  path: string;
  kind: 'system' | 'venv' | 'conda';
  version: string;
  abi: string;
  /** The file it resolves to (a venv's python3 links to its base interpreter). */
  executable: string;
  /** Python.h of this interpreter (or of a venv's base) is in the image. */
  headers: boolean;
  /** The environment's prefix (venv or conda), whose bin/ goes first on PATH. */
  prefix?: string;
  /** A venv that sees the system's site-packages (include-system-site-packages = true). */
  systemSitePackages?: boolean;
}

const systemPython = '/usr/bin/python3';

/** Where environments are looked for: each directory's children that have bin/python3. */
const environmentParents = ['/usr/local/share', '/opt', '/root', '/opt/conda/envs', '/root/miniconda3/envs', '/root/anaconda3/envs'];

/** Pure: the key = value lines of a pyvenv.cfg. */
export function parsePyvenvCfg(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^\s*([A-Za-z_-]+)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out[m[1]!.toLowerCase()] = m[2]!;
  }
  return out;
}

/** The interpreter at `inner` in the image, or undefined when there is none (not a file, no version to read). */
export function describeInterpreter(rootHost: string, inner: string): Interpreter | undefined {
  let resolved;
  try {
    resolved = resolveInRoot(rootHost, inner);
  } catch {
    return undefined;
  }
  if (resolved.type !== 'file') return undefined;
  const prefix = path.posix.dirname(path.posix.dirname(inner));
  const readText = (p: string) => {
    const r = resolveInRoot(rootHost, p);
    return r.type === 'file' ? fs.readFileSync(r.host, 'utf8') : undefined;
  };
  const cfg = safe(() => readText(`${prefix}/pyvenv.cfg`));
  const conda = safe(() => resolveInRoot(rootHost, `${prefix}/conda-meta`).type === 'dir');
  const venv = cfg === undefined ? undefined : parsePyvenvCfg(cfg);
  const named = /python(\d+\.\d+)m?$/.exec(resolved.inner)?.[1];
  const fromCfg = /^(\d+\.\d+)/.exec(venv?.version ?? venv?.version_info ?? '')?.[1];
  const version = named ?? fromCfg;
  if (!version) return undefined;
  // Python.h lives beside the interpreter that was built: the resolved file's prefix.
  const base = path.posix.dirname(path.posix.dirname(resolved.inner));
  const headers = [`${base}/include/python${version}/Python.h`, `${base}/include/python${version}m/Python.h`].some((h) => safe(() => resolveInRoot(rootHost, h).type === 'file'));
  const kind = venv ? 'venv' : conda ? 'conda' : 'system';
  return {
    path: inner,
    kind,
    version,
    abi: pythonAbi(version),
    executable: resolved.inner,
    headers,
    ...(kind !== 'system' ? { prefix } : {}),
    ...(venv ? { systemSitePackages: venv['include-system-site-packages'] === 'true' } : {}),
  };
}

/** Every interpreter found: the system's first, then /usr/local/bin's, then environments by path. */
export function findInterpreters(rootHost: string): Interpreter[] {
  const candidates = [systemPython, '/usr/local/bin/python3'];
  for (const parent of environmentParents) {
    const dir = safe(() => resolveInRoot(rootHost, parent));
    if (dir?.type !== 'dir') continue;
    const children = safe(() => fs.readdirSync(dir.host)) ?? [];
    for (const child of children.sort()) candidates.push(`${parent}/${child}/bin/python3`);
  }
  const found: Interpreter[] = [];
  for (const c of candidates) {
    const i = describeInterpreter(rootHost, c);
    // /usr/local/bin/python3 that is the system's one again is not another interpreter.
    if (i && !found.some((f) => f.kind === 'system' && i.kind === 'system' && f.executable === i.executable)) found.push(i);
  }
  return found;
}

/** The interpreter `--python PATH` names, or an error that lists what the image has. */
export function chooseInterpreter(rootHost: string, image: string, inner: string): Interpreter {
  if (!inner.startsWith('/')) throw new PreconditionError(`--python ${inner}: give the interpreter's absolute path inside the image`, 'e.g. --python /usr/local/share/pynq-venv/bin/python3');
  const i = describeInterpreter(rootHost, inner);
  if (i) return i;
  const found = findInterpreters(rootHost).map((f) => `${f.path} (${f.kind}, ${f.version})`);
  throw new PreconditionError(
    `--python ${inner}: no Python interpreter there in ${image}`,
    found.length ? `the image has: ${found.join(', ')}` : 'the image has no Python interpreter imgbuild can find',
  );
}

function safe<T>(fn: () => T): T | undefined {
  try {
    return fn();
  } catch {
    return undefined;
  }
}
