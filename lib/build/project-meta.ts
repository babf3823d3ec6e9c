// The name a project declares, read on the host before anything is built: from a directory, or
// from inside an sdist or tarball of any file name (Debian's foo_1.2.orig.tar.gz, GitHub's
// v1.2.tar.gz). PKG-INFO first, then pyproject.toml [project], setup.cfg [metadata], setup.py.
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { readEntry, readZip } from '../parse/zip.js';

const metadataFiles = ['PKG-INFO', 'pyproject.toml', 'setup.cfg', 'setup.py'] as const;
type Read = (file: (typeof metadataFiles)[number]) => string | undefined;

/**
 * The distribution name a project directory declares (pyproject.toml [project], setup.cfg
 * [metadata], or a literal name= in setup.py), or undefined when it is computed or absent.
 */
export function declaredName(dir: string): string | undefined {
  return nameFrom((f) => {
    try {
      return fs.readFileSync(path.join(dir, f), 'utf8');
    } catch {
      return undefined;
    }
  });
}

/** The same for an archive: its metadata files at the top, or below its one top directory. */
export async function declaredNameInArchive(ctx: Context, file: string): Promise<string | undefined> {
  return nameFrom(/\.zip$/i.test(file) ? zipReader(file) : await tarReader(ctx, file));
}

/** The top directory of an archive's member paths: '' when they do not share one. */
export function archiveTop(members: readonly string[]): string {
  const names = members.map((m) => m.replace(/^\.\//, '')).filter((m) => m !== '' && m !== '.');
  const first = names[0]?.split('/')[0] ?? '';
  const shared = names.every((m) => m === first || m.startsWith(`${first}/`));
  return shared && names.some((m) => m.startsWith(`${first}/`)) ? first : '';
}

function nameFrom(read: Read): string | undefined {
  const pkgInfo = /^Name:\s*(\S+)\s*$/m.exec(read('PKG-INFO') ?? '')?.[1];
  if (pkgInfo) return pkgInfo;
  const fromPyproject = section(read('pyproject.toml'), /^\[project\]$/);
  if (fromPyproject) return fromPyproject;
  const fromCfg = section(read('setup.cfg'), /^\[metadata\]$/);
  if (fromCfg) return fromCfg;
  const setupPy = read('setup.py');
  return setupPy ? /\bsetup\s*\([^)]*?\bname\s*=\s*["']([A-Za-z0-9][A-Za-z0-9._-]*)["']/s.exec(setupPy)?.[1] : undefined;
}

function section(text: string | undefined, header: RegExp): string | undefined {
  if (!text) return undefined;
  const lines = text.split('\n');
  const start = lines.findIndex((l) => header.test(l.trim()));
  if (start < 0) return undefined;
  for (const l of lines.slice(start + 1)) {
    if (/^\s*\[/.test(l)) break;
    const m = /^\s*name\s*=\s*["']?([A-Za-z0-9][A-Za-z0-9._-]*)["']?\s*$/.exec(l);
    if (m) return m[1];
  }
  return undefined;
}

function zipReader(file: string): Read {
  const entries = readZip(file);
  const top = archiveTop(entries.map((e) => e.name));
  return (f) => {
    const e = entries.find((x) => x.name === (top ? `${top}/${f}` : f));
    return e ? readEntry(file, e).toString('utf8') : undefined;
  };
}

async function tarReader(ctx: Context, file: string): Promise<Read> {
  const list = await ctx.run('tar', ['-tf', file], { quiet: true, allowFailure: true });
  if (list.exitCode !== 0) return () => undefined;
  const members = list.stdout.split('\n').filter(Boolean);
  const top = archiveTop(members);
  const texts = new Map<string, string>();
  for (const f of metadataFiles) {
    const member = members.find((m) => m.replace(/^\.\//, '') === (top ? `${top}/${f}` : f));
    if (!member) continue;
    const r = await ctx.run('tar', ['-xOf', file, member], { quiet: true, allowFailure: true });
    if (r.exitCode === 0) texts.set(f, r.stdout);
  }
  return (f) => texts.get(f);
}
