// Debian source packages for the benchmark, fetched once with apt-get source through a
// temporary apt configuration that turns the host's own sources into deb-src entries (so no
// mirror is named here), and cached, extracted, under CACHE/bench-src/PACKAGE.
import fs from 'node:fs';
import path from 'node:path';
import type { Run } from '../lib/core/runner.js';
import { hostAptSources, hostSuite, sourcesFor } from '../lib/image-tools/sample.js';

export { sourcesFor };

export interface SourceTree {
  package: string;
  version: string;
  /** The extracted upstream tree. */
  dir: string;
  /** The upstream tarball as it arrived (kept beside the tree; absent in caches made before it was kept). */
  tarball?: string;
}

/** Pure: an apt sources file with every entry a source entry (binary ones turned, disabled ones dropped). */
export function toDebSrc(fileName: string, text: string): string {
  if (fileName.endsWith('.sources')) {
    return text
      .split(/\n\s*\n/)
      .filter((stanza) => !/^Enabled:\s*no\s*$/im.test(stanza))
      .filter((stanza) => /^Types:(.*\s)?deb(-src)?(\s|$)/m.test(stanza))
      .map((stanza) => stanza.replace(/^Types:.*$/m, 'Types: deb-src'))
      .join('\n\n');
  }
  return text
    .split('\n')
    .filter((line) => /^\s*deb(-src)?\s/.test(line))
    .map((line) => line.replace(/^\s*deb(-src)?\s/, 'deb-src '))
    .join('\n');
}

/** Pure: a source spec `PKG` or `PKG/SUITE` (another release's source, e.g. onnx/trixie) split. */
export function parseSourceSpec(spec: string): { pkg: string; suite?: string } {
  const [pkg, suite] = spec.split('/');
  return suite ? { pkg: pkg!, suite } : { pkg: pkg! };
}

/** Pure: the versions `apt-cache showsrc PKG` lists for that source package, in its order. */
export function parseShowsrcVersions(text: string, pkg: string): string[] {
  const versions: string[] = [];
  for (const stanza of text.split(/\n\s*\n/)) {
    const name = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    if (name === pkg && version && !versions.includes(version)) versions.push(version);
  }
  return versions;
}

/** Pure: the upstream tarball among downloaded files (orig tarball, or a native package's tarball). */
export function upstreamTarball(files: readonly string[], pkg: string): string | undefined {
  const esc = pkg.replace(/[.+]/g, '\\$&');
  return (
    files.find((f) => new RegExp(`^${esc}_[^_]+\\.orig\\.tar\\.(gz|xz|bz2)$`).test(f)) ??
    files.find((f) => new RegExp(`^${esc}_[^_]+\\.tar\\.(gz|xz|bz2)$`).test(f) && !f.includes('.debian.'))
  );
}

/** apt options that keep everything (sources, lists, downloads) in `dir`. */
export function aptOptions(dir: string): string[] {
  return [
    ['Dir::Etc::SourceList', '/dev/null'],
    ['Dir::Etc::SourceParts', path.join(dir, 'sources.list.d')],
    ['Dir::State::Lists', path.join(dir, 'lists')],
    ['Dir::Cache', path.join(dir, 'cache')],
    // The download directories are ours, not _apt's.
    ['APT::Sandbox::User', 'root'],
    ['Acquire::Retries', '3'],
  ].flatMap(([k, v]) => ['-o', `${k}=${v}`]);
}

// The cache directory of a spec: PKG for the host's release, PKG@SUITE for another.
const homeOf = (root: string, spec: string) => path.join(root, spec.replace('/', '@'));

function cached(root: string, spec: string): SourceTree | undefined {
  const pkg = parseSourceSpec(spec).pkg;
  try {
    const meta = JSON.parse(fs.readFileSync(path.join(homeOf(root, spec), 'source.json'), 'utf8')) as { version: string; dir: string; from: string };
    const dir = path.join(homeOf(root, spec), meta.dir);
    const tarball = path.join(homeOf(root, spec), meta.from);
    if (!fs.statSync(dir).isDirectory()) return undefined;
    return { package: pkg, version: meta.version, dir, ...(fs.existsSync(tarball) ? { tarball } : {}) };
  } catch {
    return undefined;
  }
}

/**
 * Cached trees, fetching the missing ones (one apt update for all of them). A spec is a source
 * package of the host's release, or PKG/SUITE for another release's (its deb-src entries made
 * from the host's mirrors with the suite changed). The result is keyed by spec.
 */
export async function fetchSources(run: Run, cacheDir: string, packages: readonly string[], say: (line: string) => void): Promise<Record<string, SourceTree>> {
  const root = path.join(cacheDir, 'bench-src');
  const out: Record<string, SourceTree> = {};
  const missing = packages.filter((p) => {
    const c = cached(root, p);
    if (c) out[p] = c;
    return !c;
  });
  if (missing.length === 0) return out;

  fs.mkdirSync(root, { recursive: true });
  const apt = fs.mkdtempSync(path.join(root, '.apt-'));
  try {
    for (const d of ['sources.list.d', 'lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(apt, d), { recursive: true });
    for (const [i, file] of hostAptSources().entries()) {
      const ext = file.endsWith('.sources') ? '.sources' : '.list';
      fs.writeFileSync(path.join(apt, 'sources.list.d', `host-${i}${ext}`), `${toDebSrc(file, fs.readFileSync(file, 'utf8'))}\n`);
    }
    for (const suite of new Set(missing.map((m) => parseSourceSpec(m).suite).filter((x) => x !== undefined))) {
      fs.writeFileSync(path.join(apt, 'sources.list.d', `${suite}.sources`), `${sourcesFor(suite, hostAptSources(), hostSuite(), 'deb-src')}\n`);
    }
    const opts = aptOptions(apt);
    say(`fetching Debian sources of ${missing.join(', ')} (apt-get source, the host's apt sources as deb-src)`);
    // A source without a Sources index (a third-party repository) fails update, not the fetch.
    const upd = await run('apt-get', [...opts, '-q', 'update'], { allowFailure: true });
    if (upd.exitCode !== 0) say(`apt-get update reported errors (continuing):\n${upd.all.trim().split('\n').slice(-5).join('\n')}`);
    for (const pkg of missing) out[pkg] = await fetchOne(run, opts, root, pkg, say);
  } finally {
    fs.rmSync(apt, { recursive: true, force: true });
  }
  return out;
}

async function fetchOne(run: Run, opts: string[], root: string, spec: string, say: (line: string) => void): Promise<SourceTree> {
  const { pkg, suite } = parseSourceSpec(spec);
  const home = homeOf(root, spec);
  fs.mkdirSync(home, { recursive: true });
  const dl = fs.mkdtempSync(path.join(home, '.download-'));
  try {
    const showsrc = await run('apt-cache', [...opts, 'showsrc', pkg], { allowFailure: true });
    // The candidate first, then every other version the archive lists: a mirror may lack the
    // files of one of them (seen: a security update's files missing while its index was there).
    // Another release's source is asked for by release only (its other versions are other releases').
    const tries = suite ? [`${pkg}/${suite}`] : [pkg, ...parseShowsrcVersions(showsrc.stdout, pkg).map((v) => `${pkg}=${v}`)];
    const errors: string[] = [];
    for (const t of tries) {
      for (const f of fs.readdirSync(dl)) fs.rmSync(path.join(dl, f), { recursive: true, force: true });
      const r = await run('apt-get', [...opts, '-q', 'source', '--download-only', t], { cwd: dl, allowFailure: true });
      const tarball = upstreamTarball(fs.readdirSync(dl), pkg);
      if (!tarball) {
        errors.push(`${t}: ${r.all.trim().split('\n').filter((l) => /^E:/.test(l))[0] ?? `exit ${r.exitCode}`}`);
        continue;
      }
      const version = /_([^_]+?)(\.orig)?\.tar\./.exec(tarball)![1]!;
      const x = path.join(dl, 'x');
      fs.mkdirSync(x);
      await run('tar', ['-xf', path.join(dl, tarball), '--no-same-owner', '-C', x]);
      const tops = fs.readdirSync(x);
      if (tops.length !== 1) throw new Error(`${tarball} does not hold one top-level directory (${tops.join(', ')})`);
      const dir = tops[0]!;
      fs.rmSync(path.join(home, dir), { recursive: true, force: true });
      fs.renameSync(path.join(x, dir), path.join(home, dir));
      fs.renameSync(path.join(dl, tarball), path.join(home, tarball));
      fs.writeFileSync(path.join(home, 'source.json'), `${JSON.stringify({ version, dir, from: tarball }, null, 2)}\n`);
      say(`  ${spec}: ${tarball}${t === pkg ? '' : ` (from ${t})`}`);
      return { package: pkg, version, dir: path.join(home, dir), tarball: path.join(home, tarball) };
    }
    throw new Error(`could not fetch the source of ${spec} from the host's apt sources:\n  ${errors.join('\n  ')}`);
  } finally {
    fs.rmSync(dl, { recursive: true, force: true });
  }
}
