// Files of a package from another Debian release, for tests that need an image older in one
// respect (a board whose libstdc++ predates its compiler). apt-get fetches it from the host's own
// mirrors with only the suite changed, so no mirror is named here; cached per machine.
import fs from 'node:fs';
import path from 'node:path';
import { execaSync } from 'execa';
import { aptOptions, sourcesFor } from '../../bench/sources.js';
import { hostAptSources, hostSuite } from '../../lib/image-tools/sample.js';

const cacheRoot = '/var/cache/imgbuild/test-debs';

/**
 * The unpacked files of `pkg` for Debian architecture `arch` from `suite`: the directory, or why it
 * could not be had (no such mirror for this host, the network, the archive moved the release).
 * Synchronous: AVA wants tests declared synchronously, and whether one runs depends on this.
 */
export function debianPackage(suite: string, arch: string, pkg: string): { dir: string } | { unavailable: string } {
  const dir = path.join(cacheRoot, `${suite}-${arch}-${pkg}`);
  if (fs.existsSync(path.join(dir, '.complete'))) return { dir };
  const host = hostSuite();
  const sources = sourcesFor(suite, hostAptSources(), host);
  if (!sources) return { unavailable: `no apt source of the host serves its own release ${host}, so there is no mirror to ask for ${suite}` };
  const work = fs.mkdtempSync('/var/tmp/imgbuild-apt-');
  try {
    for (const d of ['sources.list.d', 'lists/partial', 'cache/archives/partial']) fs.mkdirSync(path.join(work, d), { recursive: true });
    fs.writeFileSync(path.join(work, 'sources.list.d', `${suite}.sources`), sources);
    fs.writeFileSync(path.join(work, 'status'), '');
    // The benchmark's private apt configuration, with an empty dpkg status and the image's arch.
    const opts = [...aptOptions(work), `-oDir::State::Status=${work}/status`, `-oAPT::Architecture=${arch}`, `-oAPT::Architectures::=${arch}`, '-oAcquire::Languages=none'];
    const update = execaSync('apt-get', [...opts, 'update'], { reject: false, all: true });
    if (update.exitCode !== 0 || /^(W|E): .*(Failed to fetch|does not have a Release file)/m.test(String(update.all))) {
      return { unavailable: `apt-get update for ${suite} failed: ${String(update.all).trim().split('\n').slice(-2).join(' ')}` };
    }
    const dl = execaSync('apt-get', [...opts, 'download', `${pkg}:${arch}`], { cwd: work, reject: false, all: true });
    const deb = fs.readdirSync(work).find((f) => f.endsWith('.deb'));
    if (dl.exitCode !== 0 || !deb) return { unavailable: `apt-get download ${pkg}:${arch} from ${suite} failed: ${String(dl.all).trim().split('\n').slice(-2).join(' ')}` };
    const tmp = `${dir}.tmp-${process.pid}`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    execaSync('dpkg-deb', ['-x', path.join(work, deb), tmp]);
    fs.writeFileSync(path.join(tmp, '.complete'), `${deb}\n`);
    fs.rmSync(dir, { recursive: true, force: true });
    fs.renameSync(tmp, dir);
    return { dir };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}
