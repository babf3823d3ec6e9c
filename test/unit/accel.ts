// Deciding whether the host's cross gcc can stand in for the image's: on fake host and image trees.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { accelIdentity, decideAccel, decideWithToolchain, gccConfigureLine, hostCrossVersions, imageGcc, imageRelease, targetDefaults, targetFlags } from '../../lib/accel/index.js';
import { forRelease, imageAptSources, parseAptSources } from '../../lib/accel/apt-sources.js';
import { createContext } from '../../lib/core/context.js';
import { PreconditionError, UsageError } from '../../lib/core/errors.js';
import { defaultMemoryLimit } from '../../lib/build/index.js';
import { memoryLimit, pidsLimit } from '../../bin/commands/build.js';

const GiB = 1024 ** 3;

function tree(files: Record<string, string>): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-accel-'));
  for (const [p, content] of Object.entries(files)) {
    const full = path.join(root, p);
    fs.mkdirSync(path.dirname(full), { recursive: true });
    if (content.startsWith('->')) fs.symlinkSync(content.slice(2), full);
    else fs.writeFileSync(full, content);
  }
  return root;
}

/** A driver file as far as imgbuild reads it: the configure line among its strings. */
const driver = (options = '', triple = 'aarch64-linux-gnu') => `\x7fELF...\0GCC is not configured to support %qs\0../src/configure -v --prefix=/usr ${options} --target=${triple}\0more\0`;

const hostWith = (...versions: string[]) =>
  tree(Object.fromEntries(versions.flatMap((v) => [
    [`usr/lib/gcc-cross/aarch64-linux-gnu/${v}/cc1`, ''],
    [`usr/lib/gcc-cross/aarch64-linux-gnu/${v}/cc1plus`, ''],
    [`usr/bin/aarch64-linux-gnu-gcc-${v}`, driver()],
    [`usr/bin/aarch64-linux-gnu-g++-${v}`, ''],
  ])));

const imageWith = (dir: string, triple = 'aarch64-linux-gnu', extra: Record<string, string> = {}) =>
  tree({ [`usr/lib/gcc/${triple}/${dir}/cc1`]: '', [`usr/lib/gcc/${triple}/${dir}/cc1plus`]: '', [`usr/bin/${triple}-gcc-${dir.split('.')[0]}`]: driver('', triple), ...extra });

test('the image gcc is found from its files; several versions: the one /usr/bin/cc leads to', (t) => {
  t.like(imageGcc(imageWith('12'), 'aarch64'), { triple: 'aarch64-linux-gnu', dir: '12', major: '12', hasCxx: true });
  t.like(imageGcc(imageWith('12.2.0', 'aarch64-unknown-linux-gnu'), 'aarch64'), { triple: 'aarch64-unknown-linux-gnu', dir: '12.2.0', major: '12' });
  const two = imageWith('12', 'aarch64-linux-gnu', {
    'usr/lib/gcc/aarch64-linux-gnu/11/cc1': '',
    'usr/bin/aarch64-linux-gnu-gcc-11': '',
    'usr/bin/gcc-11': '->aarch64-linux-gnu-gcc-11',
    'usr/bin/cc': '->/usr/bin/gcc-11',
  });
  t.is(imageGcc(two, 'aarch64')?.major, '11');
  t.is(imageGcc(tree({ 'etc/os-release': '' }), 'aarch64'), undefined);
  t.is(imageGcc(imageWith('12'), 'armhf'), undefined, 'an aarch64 gcc is not an armhf one');
  // Debian 13 keeps cc1 under /usr/libexec/gcc, the crt files and libraries under /usr/lib/gcc.
  const trixie = tree({ 'usr/lib/gcc/aarch64-linux-gnu/14/crtbegin.o': '', 'usr/libexec/gcc/aarch64-linux-gnu/14/cc1': '', 'usr/libexec/gcc/aarch64-linux-gnu/14/cc1plus': '' });
  t.like(imageGcc(trixie, 'aarch64'), { dir: '14', major: '14', execDir: '/usr/libexec/gcc/aarch64-linux-gnu/14', hasCxx: true });
});

test('host cross versions: only complete ones (cc1 and the driver), newest first', (t) => {
  const host = hostWith('11', '12');
  fs.mkdirSync(path.join(host, 'usr/lib/gcc-cross/aarch64-linux-gnu/13'));
  t.deepEqual(hostCrossVersions('aarch64', host), ['12', '11']);
  t.deepEqual(hostCrossVersions('armhf', host), []);
});

test('auto: the matching host cross gcc; otherwise emulation, saying which versions exist and what to install', (t) => {
  const d = decideAccel({ mode: 'auto' }, 'aarch64', imageWith('12'), hostWith('12'));
  t.is(d.kind, 'cross');
  if (d.kind === 'cross') t.false(d.forced);
  const off = decideAccel({ mode: 'auto' }, 'aarch64', imageWith('10'), hostWith('11', '12'));
  t.is(off.kind, 'none');
  t.regex(off.reason, /no host cross gcc 10 for aarch64-linux-gnu \(the image's gcc is 10; the host has gcc 12, gcc 11/);
  t.is(decideAccel({ mode: 'auto' }, 'x86_64', imageWith('12'), hostWith('12')).kind, 'none');
  t.regex(decideAccel({ mode: 'none' }, 'aarch64', imageWith('12'), hostWith('12')).reason, /--accel none/);
});

test('explicit cross fails instead of falling back, with the apt command; --accel-gcc forces another version', (t) => {
  const e = t.throws(() => decideAccel({ mode: 'cross' }, 'aarch64', imageWith('10'), hostWith('12')));
  t.true(e instanceof PreconditionError);
  t.regex((e as PreconditionError).hint ?? '', /apt-get install gcc-10-aarch64-linux-gnu g\+\+-10-aarch64-linux-gnu/);
  const forced = decideAccel({ mode: 'cross', gcc: '12' }, 'aarch64', imageWith('10'), hostWith('12'));
  t.is(forced.kind, 'cross');
  if (forced.kind === 'cross') {
    t.true(forced.forced);
    t.regex(forced.reason, /forced over the image's gcc 10/);
  }
  t.throws(() => decideAccel({ mode: 'cross' }, 'aarch64', tree({}), hostWith('12')), { instanceOf: PreconditionError, message: /the image has no gcc/ });
});

test('an image with g++ needs the host g++ too; distcc needs servers', (t) => {
  const host = hostWith('12');
  fs.rmSync(path.join(host, 'usr/lib/gcc-cross/aarch64-linux-gnu/12/cc1plus'));
  t.regex(decideAccel({ mode: 'auto' }, 'aarch64', imageWith('12'), host).reason, /not g\+\+-12-aarch64-linux-gnu/);
  t.throws(() => decideAccel({ mode: 'distcc' }, 'aarch64', imageWith('12'), hostWith('12')), { instanceOf: UsageError });
  t.is(decideAccel({ mode: 'distcc', distccHosts: ['127.0.0.1'] }, 'aarch64', imageWith('12'), hostWith('12')).kind, 'distcc');
});

test('the compiler identity in wheel cache keys tells emulated, undecided and cross builds apart', (t) => {
  const cross = decideAccel({ mode: 'auto' }, 'aarch64', imageWith('12'), hostWith('12'));
  const ids = [accelIdentity({ mode: 'auto' }, cross), accelIdentity({ mode: 'none' }, { kind: 'none', reason: '' }), accelIdentity({ mode: 'auto' }, undefined)];
  t.is(new Set(ids).size, 3);
  t.regex(ids[0]!, /^cross:aarch64-linux-gnu-gcc-12:/);
});

// Configure lines as `gcc -v` prints them (abridged) on Debian armhf and Raspberry Pi OS armhf.
const debianArmhf = "../src/configure -v --with-pkgversion='Debian 12.2.0-14' --prefix=/usr --enable-multiarch --disable-sjlj-exceptions --with-arch=armv7-a+fp --with-float=hard --with-mode=thumb --disable-werror --target=arm-linux-gnueabihf";
const raspbian = "../src/configure -v --with-pkgversion='Raspbian 12.2.0-14+rpi1' --prefix=/usr --enable-multiarch --disable-sjlj-exceptions --with-arch=armv6 --with-fpu=vfp --with-float=hard --disable-werror --target=arm-linux-gnueabihf";

test("target defaults: the image gcc's own, where the host cross gcc was configured otherwise", (t) => {
  t.deepEqual(targetDefaults(raspbian), { arch: 'armv6', fpu: 'vfp', float: 'hard' });
  t.deepEqual(targetFlags(targetDefaults(raspbian), targetDefaults(debianArmhf)), { flags: ['-march=armv6', '-mfpu=vfp', '-marm'] });
  t.deepEqual(targetFlags(targetDefaults(debianArmhf), targetDefaults(debianArmhf)), { flags: [] });
  // Tuning only changes speed; a -mcpu default covers an -march one the host has.
  t.deepEqual(targetFlags({ cpu: 'cortex-a53' }, { arch: 'armv8-a', tune: 'cortex-a72' }), { flags: ['-mcpu=cortex-a53'] });
  const unknown = targetFlags({}, { arch: 'armv8.2-a' });
  t.true('problem' in unknown && /configured --with-arch=armv8.2-a and the image's gcc without it/.test(unknown.problem));
  t.is(gccConfigureLine(Buffer.from(driver('--with-arch=armv6'))), '../src/configure -v --prefix=/usr --with-arch=armv6 --target=aarch64-linux-gnu');
  t.is(gccConfigureLine(Buffer.from('no configure line here')), undefined);
});

test("accel gives the drivers the image gcc's target defaults; one it cannot tell means emulation", (t) => {
  const rpi = imageWith('12', 'arm-linux-gnueabihf', { 'usr/bin/arm-linux-gnueabihf-gcc-12': `x\0${raspbian}\0` });
  const host = tree({
    'usr/lib/gcc-cross/arm-linux-gnueabihf/12/cc1': '',
    'usr/lib/gcc-cross/arm-linux-gnueabihf/12/cc1plus': '',
    'usr/bin/arm-linux-gnueabihf-gcc-12': `x\0${debianArmhf}\0`,
    'usr/bin/arm-linux-gnueabihf-g++-12': '',
  });
  const d = decideAccel({ mode: 'auto' }, 'armhf', rpi, host);
  t.is(d.kind, 'cross');
  if (d.kind === 'cross') t.deepEqual(d.targetFlags, ['-march=armv6', '-mfpu=vfp', '-marm']);
  t.regex(d.reason, /with the image gcc's target defaults -march=armv6 -mfpu=vfp -marm/);
  const plain = decideAccel({ mode: 'auto' }, 'armhf', imageWith('12', 'arm-linux-gnueabihf', { 'usr/bin/arm-linux-gnueabihf-gcc-12': `x\0${debianArmhf}\0` }), host);
  t.true(plain.kind === 'cross' && plain.targetFlags.length === 0);
  t.not(accelIdentity({ mode: 'auto' }, d), accelIdentity({ mode: 'auto' }, plain), 'other target flags, another wheel cache key');
  const unreadable = imageWith('12', 'arm-linux-gnueabihf', { 'usr/bin/arm-linux-gnueabihf-gcc-12': 'stripped' });
  t.regex(decideAccel({ mode: 'auto' }, 'armhf', unreadable, host).reason, /emulated compiler: cannot read the image gcc driver's configuration/);
  t.throws(() => decideAccel({ mode: 'cross' }, 'armhf', unreadable, host), { instanceOf: PreconditionError });
});

test('pids limit: a number (16 or more), none, auto', (t) => {
  t.deepEqual(pidsLimit('auto'), {});
  t.deepEqual(pidsLimit('none'), { pidsLimit: 0 });
  t.deepEqual(pidsLimit('4096'), { pidsLimit: 4096 });
  t.throws(() => pidsLimit('8'), { instanceOf: UsageError, message: /16 or more/ });
  t.throws(() => pidsLimit('many'), { instanceOf: UsageError });
});

test('memory limit: sizes, none, auto; the default leaves a reserve and is at least 1 GiB', (t) => {
  t.deepEqual(memoryLimit('auto'), {});
  t.deepEqual(memoryLimit('none'), { memoryLimit: 0 });
  t.deepEqual(memoryLimit('6G'), { memoryLimit: 6 * GiB });
  t.deepEqual(memoryLimit('512M'), { memoryLimit: 512 * 1024 ** 2 });
  t.throws(() => memoryLimit('lots'), { instanceOf: UsageError });
  t.throws(() => memoryLimit('1M'), { instanceOf: UsageError });
  t.is(defaultMemoryLimit(20 * GiB, 24 * GiB), Math.floor(20 * GiB - 2.4 * GiB));
  t.is(defaultMemoryLimit(1.2 * GiB, 2 * GiB), GiB);
});

test("toolchain trees: a tree of the image's release stands in when the host has no cross gcc of its version; --toolchain host and tree choose; --accel-gcc never takes a tree", (t) => {
  const image = imageWith('14', 'aarch64-linux-gnu', { 'usr/libexec/gcc/aarch64-linux-gnu/14/cc1': '' });
  const host = hostWith('12');
  // Debian 13's cross gcc keeps cc1 under /usr/libexec/gcc-cross.
  const trixie = tree({ 'usr/libexec/gcc-cross/aarch64-linux-gnu/14/cc1': '', 'usr/libexec/gcc-cross/aarch64-linux-gnu/14/cc1plus': '', 'usr/bin/aarch64-linux-gnu-gcc-14': driver(), 'usr/bin/aarch64-linux-gnu-g++-14': '' });
  t.deepEqual(hostCrossVersions('aarch64', trixie), ['14']);
  const none = decideAccel({ mode: 'auto' }, 'aarch64', image, host);
  t.like(none, { kind: 'none', missing: { triple: 'aarch64-linux-gnu', major: '14' } });
  t.regex(none.reason, /no host cross gcc 14 .*the host has gcc 12/);
  const viaTree = decideAccel({ mode: 'auto' }, 'aarch64', image, host, [trixie]);
  t.like(viaTree, { kind: 'cross', forced: false });
  if (viaTree.kind !== 'cross') return;
  t.is(viaTree.host.tree, path.basename(trixie));
  t.is(viaTree.host.gccDir, path.join(trixie, 'usr/libexec/gcc-cross/aarch64-linux-gnu/14'));
  t.regex(viaTree.reason, /native \(toolchain tree imgbuild-accel-\w+\) aarch64-linux-gnu-gcc-14/);
  t.regex(accelIdentity({ mode: 'auto' }, viaTree), /^cross:tree:imgbuild-accel-\w+:aarch64-linux-gnu-gcc-14:/);
  t.like(decideAccel({ mode: 'auto', toolchain: 'host' }, 'aarch64', image, host, [trixie]), { kind: 'none' });
  t.throws(() => decideAccel({ mode: 'cross', toolchain: 'host' }, 'aarch64', image, host, [trixie]), { instanceOf: PreconditionError, message: /no host cross gcc 14/ });
  // The host's gcc of the image's version goes first; --toolchain tree skips it.
  const image12 = imageWith('12');
  const tree12 = hostWith('12');
  t.is((decideAccel({ mode: 'auto' }, 'aarch64', image12, host, [tree12]) as { host: { tree?: string } }).host.tree, undefined);
  t.is((decideAccel({ mode: 'auto', toolchain: 'tree' }, 'aarch64', image12, host, [tree12]) as { host: { tree?: string } }).host.tree, path.basename(tree12));
  t.like(decideAccel({ mode: 'auto', toolchain: 'tree' }, 'aarch64', image12, host, []), { kind: 'none', missing: { major: '12' } });
  const forced = decideAccel({ mode: 'auto', gcc: '13' }, 'aarch64', image, host, [trixie]);
  t.like(forced, { kind: 'none' });
  t.false('missing' in forced && forced.missing !== undefined, 'a forced version is the host\'s to give');
});

test("the image's apt sources for its toolchain tree: deb entries of its release (and -updates, -security), deb822 and one-line, keys kept", (t) => {
  const deb822 = 'Types: deb deb-src\nURIs: http://archive.example/debian\nSuites: trixie trixie-updates\nComponents: main contrib\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\nTypes: deb-src\nURIs: http://src.example/debian\nSuites: trixie\nComponents: main\n\nTypes: deb\nURIs: http://off.example/debian\nSuites: trixie\nComponents: main\nEnabled: no\n';
  t.deepEqual(parseAptSources(deb822, true), [{ uri: 'http://archive.example/debian', suites: ['trixie', 'trixie-updates'], components: ['main', 'contrib'], signedBy: '/usr/share/keyrings/debian-archive-keyring.gpg' }]);
  const list = '# comment\ndeb [arch=armhf signed-by=/usr/share/keyrings/raspbian.gpg] http://raspbian.example/raspbian/ bookworm main contrib non-free rpi\ndeb-src http://raspbian.example/raspbian/ bookworm main\ndeb http://archive.example/debian bullseye main\n';
  const entries = parseAptSources(list, false);
  t.is(entries.length, 2);
  t.like(entries[0], { uri: 'http://raspbian.example/raspbian/', suites: ['bookworm'], signedBy: '/usr/share/keyrings/raspbian.gpg' });
  t.deepEqual(forRelease(entries, 'bookworm').map((e) => e.uri), ['http://raspbian.example/raspbian/']);
  t.deepEqual(forRelease(parseAptSources('deb http://a/debian bookworm main\ndeb http://a/debian-security bookworm-security main\ndeb http://a/debian trixie main\n', false), 'bookworm').map((e) => e.suites[0]), ['bookworm', 'bookworm-security']);
  // From an image tree: its key copied out, one-line entries of another release left out.
  const image = tree({
    'etc/apt/sources.list': 'deb http://old.example/debian bullseye main\n',
    'etc/apt/sources.list.d/debian.sources': deb822,
    'usr/share/keyrings/debian-archive-keyring.gpg': 'KEY',
    'etc/apt/trusted.gpg.d/extra.gpg': 'TRUSTED',
    'etc/os-release': 'NAME="Debian GNU/Linux"\nVERSION_CODENAME=trixie\n',
  });
  t.is(imageRelease(image), 'trixie');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-apt-'));
  const r = imageAptSources(image, 'trixie', dir);
  const text = fs.readFileSync(r.sources[0]!, 'utf8');
  t.regex(text, /^Types: deb\nURIs: http:\/\/archive.example\/debian\nSuites: trixie trixie-updates\nComponents: main contrib\nSigned-By: (\S+)\n$/);
  t.is(fs.readFileSync(/Signed-By: (\S+)/.exec(text)![1]!, 'utf8'), 'KEY');
  t.deepEqual(fs.readdirSync(r.keyring!), ['extra.gpg']);
  t.deepEqual(r.uris, ['http://archive.example/debian']);
  const viaMirror = imageAptSources(image, 'trixie', fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-apt-')), 'http://ports.example/ubuntu');
  t.regex(fs.readFileSync(viaMirror.sources[0]!, 'utf8'), /^Types: deb\nURIs: http:\/\/ports.example\/ubuntu\nSuites: trixie\nComponents: main\n$/);
  t.throws(() => imageAptSources(image, 'bookworm', fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-apt-'))), { instanceOf: PreconditionError, message: /name no archive for its release bookworm/ });
});

const hasGcc12 = hostCrossVersions('aarch64').includes('12');
(hasGcc12 ? test : test.skip)(`with distcc servers named, looking for a toolchain tree does not trip over them${hasGcc12 ? '' : ' [skipped: the host has no aarch64 gcc 12; scripts/setup-host.sh installs it]'}`, async (t) => {
  const image = imageWith('12', 'aarch64-linux-gnu', { 'etc/os-release': 'VERSION_CODENAME=bookworm\n' });
  const ctx = createContext({ cacheDir: fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-cache-')) });
  const d = await decideWithToolchain(ctx, { mode: 'distcc', distccHosts: ['10.0.0.5'] }, 'aarch64', image);
  t.like(d, { kind: 'distcc', distccHosts: ['10.0.0.5'] });
});

/** A python binary as far as imgbuild reads it: PY_VERSION among its strings. */
const pythonBinary = (version: string) => `\x7fELF...\0${version}\0main\0`;

const pythonRoot = (version: string, o: { dynload?: boolean; triple?: string; data?: 'linux' | 'plain' | 'none' } = {}) => {
  const xy = version.split('.').slice(0, 2).join('.');
  const triple = o.triple ?? 'aarch64-linux-gnu';
  const data = o.data ?? 'linux';
  return tree({
    [`usr/bin/python${xy}`]: pythonBinary(version),
    'usr/bin/python3': `->python${xy}`,
    ...(o.dynload === false ? {} : { [`usr/lib/python${xy}/lib-dynload/_ssl.so`]: '' }),
    ...(data === 'none' ? {} : { [`usr/lib/python${xy}/_sysconfigdata__${data === 'linux' ? 'linux_' : ''}${triple}.py`]: 'build_time_vars = {}\n' }),
  });
};

test('--accel full: a host Python of exactly the image\'s X.Y.Z (the host\'s, else a Python tree), read from the binaries; otherwise the emulated one, saying why', async (t) => {
  const { decidePython, pythonPatchVersion } = await import('../../lib/accel/index.js');
  const { describeInterpreter } = await import('../../lib/session/pythons.js');
  const { pythonVersionIn } = await import('../../lib/parse/python-version.js');
  t.is(pythonVersionIn(Buffer.from('\0x\x003.2.0\0 3.11.2\0 \x003.11.2\0'), '3.11'), '3.11.2');
  t.is(pythonVersionIn(Buffer.from('\x003.1.2\0'), '3.11'), undefined);
  const image = pythonRoot('3.11.2');
  t.is(pythonPatchVersion(path.join(image, 'usr/bin/python3.11'), '3.11'), '3.11.2');
  const interp = describeInterpreter(image, '/usr/bin/python3');
  const same = decidePython(image, interp, 'aarch64', [pythonRoot('3.11.2')]);
  t.like(same, { kind: 'host', python: { version: '3.11.2', sysconfigData: '_sysconfigdata__linux_aarch64-linux-gnu' } });
  t.regex(same.reason, /^Python 3\.11\.2 of the toolchain tree imgbuild-accel-\w+ runs the front end and backend natively/);
  // Another patch release is not the same Python: the next root (a tree) is tried, else emulation.
  const [older, tree311] = [pythonRoot('3.11.4'), pythonRoot('3.11.2')];
  t.is((decidePython(image, interp, 'aarch64', [older, tree311]) as { python: { root: string } }).python.root, tree311);
  const none = decidePython(image, interp, 'aarch64', [older]);
  t.like(none, { kind: 'emulated', missing: true });
  t.regex(none.reason, /^Python emulated: the image's Python is 3\.11\.2; found Python 3\.11\.4 in \S+, and a host Python must be the same version/);
  t.like(decidePython(image, interp, 'aarch64', [pythonRoot('3.11.2', { dynload: false })]), { kind: 'emulated' });
  // Debian before 12 names its data module without the platform: that one is used.
  const bullseye = pythonRoot('3.9.2', { triple: 'arm-linux-gnueabihf', data: 'plain' });
  t.like(decidePython(bullseye, describeInterpreter(bullseye, '/usr/bin/python3'), 'armhf', [pythonRoot('3.9.2')]), { kind: 'host', python: { sysconfigData: '_sysconfigdata__arm-linux-gnueabihf' } });
  const noData = pythonRoot('3.11.2', { data: 'none' });
  t.regex(decidePython(noData, describeInterpreter(noData, '/usr/bin/python3'), 'aarch64', [pythonRoot('3.11.2')]).reason, /no \/usr\/lib\/python3\.11\/_sysconfigdata__linux_aarch64-linux-gnu\.py/);
  t.regex(decidePython(image, undefined, 'aarch64').reason, /the image has no python3/);
  // A venv (PYNQ's) keeps the emulated Python: its site-packages and pyvenv.cfg are the board's.
  const venv = decidePython(image, { ...interp!, kind: 'venv', path: '/usr/local/share/pynq-venv/bin/python3' }, 'aarch64', [tree311]);
  t.like(venv, { kind: 'emulated' });
  t.false('missing' in venv && venv.missing === true, 'no Python tree helps a venv');
  t.regex(venv.reason, /pynq-venv\/bin\/python3 is a venv; --accel full runs only the image's system Python natively/);
});

test('--accel full asks for the cross compilers as --accel cross does, and keys wheels apart from them', (t) => {
  const full = decideAccel({ mode: 'full' }, 'aarch64', imageWith('12'), hostWith('12'));
  t.like(full, { kind: 'cross', full: true });
  t.like(decideAccel({ mode: 'cross' }, 'aarch64', imageWith('12'), hostWith('12')), { kind: 'cross', full: false });
  t.throws(() => decideAccel({ mode: 'full' }, 'aarch64', imageWith('14'), hostWith('12')), { instanceOf: PreconditionError, message: /^--accel full: no host cross gcc 14/ });
  t.regex(accelIdentity({ mode: 'full' }, full), /^cross:full:aarch64-linux-gnu-gcc-12:/);
});

test("--accel full's build tools: those the host has at the image's very package version (sh, make, ninja, cmake, protoc), the others emulated with both versions; dpkg's status read as dpkg writes it", async (t) => {
  const { decideTools } = await import('../../lib/accel/tools.js');
  const { installedPackages } = await import('../../lib/parse/dpkg-status.js');
  const stanza = (pkg: string, version: string, status = 'install ok installed') => `Package: ${pkg}\nStatus: ${status}\nPriority: optional\nArchitecture: arm64\nVersion: ${version}\nDescription: x\n second line\n`;
  const status = (...stanzas: string[]) => stanzas.join('\n');
  t.deepEqual([...installedPackages(status(stanza('dash', '0.5.12-2'), stanza('make', '4.3-4.1', 'deinstall ok config-files'))).entries()], [['dash', '0.5.12-2']]);
  const image = tree({
    'var/lib/dpkg/status': status(stanza('dash', '0.5.12-2'), stanza('make', '4.3-4.1'), stanza('cmake', '3.25.1-1'), stanza('ninja-build', '1.11.1-2~deb12u1')),
    'usr/bin/dash': '',
    'usr/bin/make': '',
    'usr/bin/cmake': '',
    // ninja-build installed but its file gone: nothing to put the shim over.
  });
  const host = tree({
    'var/lib/dpkg/status': status(stanza('dash', '0.5.12-2'), stanza('make', '4.4.1-1'), stanza('cmake', '3.25.1-1'), stanza('protobuf-compiler', '3.21.12-3')),
    'usr/bin/dash': '',
    'usr/bin/make': '',
    'usr/bin/cmake': '',
    'usr/bin/protoc': '',
  });
  const d = decideTools(image, host);
  t.deepEqual(d.native.map((n) => [n.name, n.inner, n.version]), [['sh', '/usr/bin/dash', '0.5.12-2'], ['cmake', '/usr/bin/cmake', '3.25.1-1']]);
  t.is(d.native[0]!.hostFile, path.join(host, 'usr/bin/dash'));
  t.deepEqual(d.emulated, ["make (the image's make 4.3-4.1; the host's 4.4.1-1)"]);
  // A Python tree of the image's release carries the others; a binNMU (+bN) is the same program.
  const pyTree = tree({ 'usr/bin/make': '', 'usr/bin/dash': '' });
  const withTree = decideTools(image, host, { dir: pyTree, packages: { make: '4.3-4.1+b1', dash: '0.5.11-1' } });
  t.deepEqual(withTree.native.map((n) => [n.name, n.root]), [['sh', host], ['make', pyTree], ['cmake', host]]);
  t.is(withTree.native[1]!.hostFile, path.join(pyTree, 'usr/bin/make'));
  t.deepEqual(withTree.emulated, []);
});
