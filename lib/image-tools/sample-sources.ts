// Where a sample image's packages come from. A Debian host's own sources serve every Debian
// architecture (for its release as they are; for another release with the suite changed). An
// Ubuntu host's archive carries only amd64 and i386: the other architectures live in another
// archive, which imgbuild does not name; --mirror URL says which.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import { PreconditionError, UsageError } from '../core/errors.js';
import { parseAptSources } from '../parse/apt-sources.js';

export type SourcesChoice = { use: 'host' } | { use: 'host-mirrors' } | { use: 'mirror'; text: string };

const ubuntuSuites = ['bionic', 'focal', 'jammy', 'noble', 'oracular', 'plucky', 'questing'];
const debianSuites = ['buster', 'bullseye', 'bookworm', 'trixie', 'forky', 'sid', 'unstable', 'testing'];

/** The host distribution's ID from /etc/os-release (debian, ubuntu, raspbian, ...). */
export function hostOsId(text = fs.readFileSync('/etc/os-release', 'utf8')): string {
  return (/^ID=(\S+)/m.exec(text)?.[1] ?? 'unknown').replace(/"/g, '');
}

/**
 * Pure: the apt sources for a sample of `suite` and `arch` on this host: its own, its mirrors with
 * the suite changed, or --mirror's (with the keyring and components of that suite's distribution).
 */
export function chooseSampleSources(o: { hostId: string; hostSuite: string; suite: string; arch: Arch; mirror?: string }): SourcesChoice {
  if (o.mirror !== undefined) {
    if (!/^(https?|file):\/\/\S+$/.test(o.mirror)) throw new UsageError(`--mirror ${o.mirror} is not an http(s) or file URL`, 'give the URL of an apt archive, as in a sources.list line');
    const ubuntu = ubuntuSuites.includes(o.suite);
    const keyring = ubuntu ? '/usr/share/keyrings/ubuntu-archive-keyring.gpg' : debianSuites.includes(o.suite) ? '/usr/share/keyrings/debian-archive-keyring.gpg' : undefined;
    return { use: 'mirror', text: `Types: deb\nURIs: ${o.mirror}\nSuites: ${o.suite}\nComponents: main${ubuntu ? ' universe' : ''}\n${keyring ? `Signed-By: ${keyring}\n` : ''}` };
  }
  const debianArch = archTable[o.arch].debian;
  if (o.hostId === 'ubuntu' && debianArch !== 'amd64' && debianArch !== 'i386') {
    throw new PreconditionError(
      `this Ubuntu host's archive carries amd64 and i386 only, not ${debianArch}, so it cannot make a ${o.arch} sample image`,
      `give an archive that carries ${debianArch}: --mirror URL with --suite (Ubuntu's ports archive for an Ubuntu release, e.g. --suite ${o.hostSuite}; a Debian mirror for --suite bookworm)`,
    );
  }
  return o.suite === o.hostSuite ? { use: 'host' } : { use: 'host-mirrors' };
}

/** The chosen sources as files for mmdebstrap (written into `dir` when they are not the host's own). */
export function sourcesFiles(choice: SourcesChoice, o: { suite: string; hostFiles: () => string[]; hostMirrors: () => string; dir: () => string; hostSuite: string }): string[] {
  if (choice.use === 'host') return o.hostFiles();
  const text = choice.use === 'mirror' ? choice.text : o.hostMirrors();
  if (!text) throw new PreconditionError(`no apt source of the host serves its own release ${o.hostSuite}, so there is no mirror to ask for ${o.suite}`, 'add a Debian mirror to /etc/apt/sources.list.d, or give one with --mirror URL');
  const file = path.join(o.dir(), `${o.suite}.sources`);
  fs.writeFileSync(file, text);
  return [file];
}

/** The host's release codename (bookworm), from /etc/os-release. */
export function hostSuite(): string {
  const text = fs.readFileSync('/etc/os-release', 'utf8');
  const m = /^VERSION_CODENAME=(\S+)/m.exec(text);
  if (!m) throw new PreconditionError('cannot tell the host distribution release from /etc/os-release', 'sample images need a Debian or Ubuntu host');
  return m[1]!.replace(/"/g, '');
}

/**
 * deb822 stanzas of `type` for `suite` on the mirrors the host uses for its own release (not
 * -security or -updates): another release's packages or sources with no mirror named here.
 */
export function sourcesFor(suite: string, files: readonly string[], host: string, type: 'deb' | 'deb-src' = 'deb'): string {
  const stanzas: string[] = [];
  const stanza = (uri: string, signed: string | undefined) => `Types: ${type}\nURIs: ${uri}\nSuites: ${suite}\nComponents: main\n${signed ? `Signed-By: ${signed}\n` : ''}`;
  for (const file of files) {
    for (const e of parseAptSources(fs.readFileSync(file, 'utf8'), file.endsWith('.sources'))) if (e.suites.includes(host)) stanzas.push(stanza(e.uri, e.signedBy));
  }
  return stanzas.join('\n');
}

/** The host's enabled apt source files: mmdebstrap pastes them into the tree, so no mirror is named here. */
export function hostAptSources(): string[] {
  const files: string[] = [];
  if (fs.existsSync('/etc/apt/sources.list') && /^\s*deb\s/m.test(fs.readFileSync('/etc/apt/sources.list', 'utf8'))) files.push('/etc/apt/sources.list');
  const dir = '/etc/apt/sources.list.d';
  if (fs.existsSync(dir)) {
    for (const n of fs.readdirSync(dir).sort()) if (/\.(list|sources)$/.test(n)) files.push(path.join(dir, n));
  }
  if (files.length === 0) throw new PreconditionError('the host has no apt sources configured', 'sample images are built from the host apt configuration (/etc/apt/sources.list.d)');
  return files;
}
