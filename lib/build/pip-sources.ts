// Where Python packages come from, the same on the host (pip download) and in the chroot (pip,
// and the front end installing build requirements): --offline, --index-url, --extra-index-url and
// --find-links, else the host's own pip settings (PIP_* variables, pip.conf: the invoking user's
// under sudo too), else pip's defaults. Checked before anything is mounted.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PreconditionError, UsageError } from '../core/errors.js';

/** --offline, --index-url, --extra-index-url, --find-links: where pip looks, on the host and in the chroot. */
export interface PipSources {
  /** No package index is contacted, on the host or in the chroot. */
  offline?: boolean;
  indexUrl?: string;
  extraIndexUrls?: string[];
  /** Host directories of wheels and sdists (bound read-only into the chroot). */
  findLinks?: string[];
}

/** PipSources as the build uses them: every field decided, with where each came from. */
export interface ResolvedPip {
  offline: boolean;
  indexUrl?: string;
  extraIndexUrls: string[];
  /** Host directories, absolute. */
  findLinks: string[];
  /** "--index-url", "PIP_INDEX_URL", "/etc/pip.conf"... for each field that is set. */
  from: Record<string, string>;
}

/** Where the chroot sees the i-th --find-links directory (bound read-only there). */
export const findLinksInner = (i: number) => `/workspace/.imgbuild/find-links/${i}`;

export function resolvePip(given: PipSources = {}, cwd: string, env: NodeJS.ProcessEnv = process.env, conf: Record<string, string> = hostPipConf(env)): ResolvedPip {
  const from: Record<string, string> = {};
  // A flag wins, then the host's PIP_* variable, then its pip.conf.
  const setting = (key: string, flag: string | undefined, envName: string): string | undefined => {
    const [value, origin] = flag !== undefined ? [flag, `--${key}`] : env[envName] ? [env[envName], envName] : conf[key] ? [conf[key], conf[`${key}@`] ?? 'pip.conf'] : [undefined, ''];
    if (value !== undefined) from[key] = origin;
    return value;
  };
  const offline = truthy(setting('no-index', given.offline ? 'true' : undefined, 'PIP_NO_INDEX'));
  const indexUrl = setting('index-url', given.indexUrl, 'PIP_INDEX_URL');
  // A flag's values are taken whole (a directory may have a space); pip's own settings are lists split on whitespace, as pip splits them.
  const list = (key: string, flag: string[] | undefined, envName: string): string[] => {
    if (!flag?.length) return words(setting(key, undefined, envName));
    from[key] = `--${key}`;
    return flag;
  };
  const extraIndexUrls = list('extra-index-url', given.extraIndexUrls, 'PIP_EXTRA_INDEX_URL');
  const findLinks = list('find-links', given.findLinks, 'PIP_FIND_LINKS').map((d) => path.resolve(cwd, d.replace(/^file:\/\//, '')));
  for (const u of [indexUrl, ...extraIndexUrls]) {
    if (u !== undefined && !/^(https?|file):\/\/\S+$/.test(u)) throw new UsageError(`package index ${u} (from ${from['index-url'] ?? from['extra-index-url']}) is not an http(s) or file URL`, 'e.g. --extra-index-url https://www.piwheels.org/simple');
  }
  for (const d of findLinks) {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) throw new PreconditionError(`--find-links ${d} (from ${from['find-links']}) is not a directory`, 'give a local directory holding wheels or sdists');
  }
  return { offline, ...(indexUrl ? { indexUrl } : {}), extraIndexUrls, findLinks, from };
}

/** pip's environment in the chroot for these sources (/workspace/pip, the host's downloads, always looked in). */
export function chrootPipEnv(p: ResolvedPip): Record<string, string> {
  const env: Record<string, string> = { PIP_FIND_LINKS: ['/workspace/pip', ...p.findLinks.map((_, i) => findLinksInner(i))].join(' ') };
  if (p.offline) env.PIP_NO_INDEX = '1';
  if (p.indexUrl) env.PIP_INDEX_URL = p.indexUrl;
  if (p.extraIndexUrls.length > 0) env.PIP_EXTRA_INDEX_URL = p.extraIndexUrls.join(' ');
  return env;
}

/** The same sources as `pip download` arguments on the host. */
export function hostPipArgs(p: ResolvedPip): string[] {
  return [
    ...(p.offline ? ['--no-index'] : []),
    ...(p.indexUrl ? ['--index-url', p.indexUrl] : []),
    ...p.extraIndexUrls.flatMap((u) => ['--extra-index-url', u]),
    ...p.findLinks.flatMap((d) => ['--find-links', d]),
  ];
}

const truthy = (v: string | undefined) => v !== undefined && /^(1|true|yes|on)$/i.test(v.trim());
const words = (v: string | undefined) => (v ?? '').split(/\s+/).filter(Boolean);

/**
 * The [global], [install] and [download] settings of the host's pip configuration files, later
 * files winning as in pip: /etc/pip.conf, /etc/xdg/pip/pip.conf, the user's (root's, and under
 * sudo the invoking user's), PIP_CONFIG_FILE. Each value's file is kept under "KEY@".
 */
export function hostPipConf(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const homes = [os.homedir(), ...(env.SUDO_USER ? [userHome(env.SUDO_USER)] : [])].filter((h): h is string => !!h);
  const files = ['/etc/pip.conf', '/etc/xdg/pip/pip.conf', ...homes.flatMap((h) => [path.join(h, '.pip', 'pip.conf'), path.join(h, '.config', 'pip', 'pip.conf')]), ...(env.PIP_CONFIG_FILE ? [env.PIP_CONFIG_FILE] : [])];
  const out: Record<string, string> = {};
  for (const file of files) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const [key, value] of Object.entries(parsePipConf(text))) Object.assign(out, { [key]: value, [`${key}@`]: file });
  }
  return out;
}

/** Pure: the [global], [install] and [download] keys of a pip.conf (continuation lines joined). */
export function parsePipConf(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  let section = '';
  let last: string | undefined;
  for (const line of text.split('\n')) {
    if (/^\s*[#;]/.test(line) || !line.trim()) continue;
    const head = /^\s*\[([^\]]+)\]\s*$/.exec(line);
    if (head) [section, last] = [head[1]!.trim(), undefined];
    else if (/^\s/.test(line) && last) out[last] = `${out[last]} ${line.trim()}`.trim();
    else {
      const kv = /^\s*([A-Za-z0-9_-]+)\s*[=:]\s*(.*)$/.exec(line);
      last = kv && ['global', 'install', 'download'].includes(section) ? kv[1]!.toLowerCase() : undefined;
      if (kv && last) out[last] = kv[2]!.trim();
    }
  }
  return out;
}

function userHome(user: string): string | undefined {
  try {
    return fs.readFileSync('/etc/passwd', 'utf8').split('\n').map((l) => l.split(':')).find((f) => f[0] === user)?.[5];
  } catch {
    return undefined;
  }
}
