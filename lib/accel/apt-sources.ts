// The image's own apt sources and keys, for the toolchain tree: its release's binary archives
// (deb822 .sources and one-line .list files), with every key file copied out of the image, so
// mmdebstrap on the host trusts exactly what the image trusts.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import { type AptEntry, parseAptSources } from '../parse/apt-sources.js';

export { type AptEntry, parseAptSources };

/** The entries for `release` (and its -updates and -security suites). */
export function forRelease(entries: AptEntry[], release: string): AptEntry[] {
  const suites = new Set([release, `${release}-updates`, `${release}-security`, `${release}/updates`]);
  return entries.map((e) => ({ ...e, suites: e.suites.filter((s) => suites.has(s)) })).filter((e) => e.suites.length > 0);
}

/**
 * Write the image's sources for `release` (or `mirror` instead) as one deb822 file in `dir`, with
 * its keys copied there; the files for mmdebstrap and a keyring directory when the image keeps
 * keys in /etc/apt/trusted.gpg.d.
 */
export function imageAptSources(rootHost: string, release: string, dir: string, mirror?: string): { sources: string[]; keyring?: string; uris: string[] } {
  const keys = path.join(dir, 'keys');
  fs.mkdirSync(keys);
  let entries: AptEntry[];
  if (mirror) {
    entries = [{ uri: mirror, suites: [release], components: ['main'] }];
  } else {
    const files = [resolveInRoot(rootHost, '/etc/apt/sources.list')];
    const d = resolveInRoot(rootHost, '/etc/apt/sources.list.d');
    if (d.type === 'dir') for (const n of fs.readdirSync(d.host).sort()) if (/\.(list|sources)$/.test(n)) files.push(resolveInRoot(rootHost, `/etc/apt/sources.list.d/${n}`));
    entries = forRelease(files.filter((f) => f.type === 'file').flatMap((f) => parseAptSources(fs.readFileSync(f.host, 'utf8'), f.inner.endsWith('.sources'))), release);
    if (entries.length === 0) throw new PreconditionError(`the image's apt sources name no archive for its release ${release}`, 'give one that carries the cross compilers for this host with --toolchain-mirror URL');
  }
  const stanzas = entries.map((e, i) => {
    let signed = '';
    if (e.signedBy) {
      const key = resolveInRoot(rootHost, e.signedBy);
      if (key.type === 'file') {
        const copy = path.join(keys, `${i}-${path.basename(key.inner)}`);
        fs.copyFileSync(key.host, copy);
        signed = `Signed-By: ${copy}\n`;
      }
    }
    return `Types: deb\nURIs: ${e.uri}\nSuites: ${e.suites.join(' ')}\nComponents: ${e.components.join(' ') || 'main'}\n${signed}`;
  });
  const file = path.join(dir, `${release}.sources`);
  fs.writeFileSync(file, stanzas.join('\n'));
  const trusted = path.join(dir, 'trusted.gpg.d');
  fs.mkdirSync(trusted);
  const td = resolveInRoot(rootHost, '/etc/apt/trusted.gpg.d');
  const copied = (td.type === 'dir' ? fs.readdirSync(td.host) : []).filter((n) => /\.(gpg|asc)$/.test(n)).map((n) => ({ n, r: resolveInRoot(rootHost, `/etc/apt/trusted.gpg.d/${n}`) })).filter(({ r }) => r.type === 'file');
  for (const { n, r } of copied) fs.copyFileSync(r.host, path.join(trusted, n));
  return { sources: [file], ...(copied.length ? { keyring: trusted } : {}), uris: [...new Set(entries.map((e) => e.uri))] };
}
