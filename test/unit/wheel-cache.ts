// The wheel cache on temp dirs: image identity memo, source fingerprints, keys, entries.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { execa } from 'execa';
import { createContext } from '../../lib/core/context.js';
import { hashFile } from '../../lib/core/hash.js';
import type { ManifestWheel } from '../../lib/wheel/manifest.js';
import { fetchSource } from '../../lib/build/sources.js';
import { planTarget } from '../../lib/targets/index.js';
import { wheelFrontendSource } from '../../lib/targets/local.js';
import { imageIdentity } from '../../lib/wheel/image-identity.js';
import { sourceFingerprint } from '../../lib/wheel/source-fingerprint.js';
import { keyJobs, type WheelKeyParts, wheelCacheKey } from '../../lib/wheel/cache-key.js';
import { lookupWheels, storeWheels, wheelEntryDir } from '../../lib/wheel/cache.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-wcache-'));
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }));

let serial = 0;
const tmp = (name: string) => {
  const p = path.join(work, `${++serial}-${name}`);
  fs.mkdirSync(p, { recursive: true });
  return p;
};

// ---------------------------------------------------------------------------------------------
// Image identity

test('the image hash is kept while the file is unchanged and computed again after a touch or a corrupt memo', async (t) => {
  const cache = tmp('cache');
  const image = path.join(tmp('img'), 'a.img');
  fs.writeFileSync(image, crypto.randomBytes(300_000));
  const real = await hashFile(image);
  // A file changed within the last second is not memoized (its ctime may not move on the next write).
  await sleep(1100);
  const memoDir = path.join(cache, 'wheels', 'images');

  t.is(await imageIdentity(image, cache), real);
  const [memoName] = fs.readdirSync(memoDir);
  const memo = path.join(memoDir, memoName!);
  // Proof the memo is what answers: a planted hash comes back while the stat is the same.
  const planted = 'f'.repeat(64);
  fs.writeFileSync(memo, JSON.stringify({ ...JSON.parse(fs.readFileSync(memo, 'utf8')), sha256: planted }));
  t.is(await imageIdentity(image, cache), planted);

  const now = new Date();
  fs.utimesSync(image, now, now);
  t.is(await imageIdentity(image, cache), real, 'touch changes ctime: hashed again');

  await sleep(1100);
  t.is(await imageIdentity(image, cache), real);
  fs.writeFileSync(memo, '{"dev": "1", "si');
  t.is(await imageIdentity(image, cache), real, 'a corrupt memo is hashed again');
  t.is(JSON.parse(fs.readFileSync(memo, 'utf8')).sha256, real, 'and rewritten');

  fs.appendFileSync(image, 'x');
  t.is(await imageIdentity(image, cache), await hashFile(image));
  t.deepEqual(fs.readdirSync(memoDir).filter((n) => n.includes('.tmp-')), []);
});

// ---------------------------------------------------------------------------------------------
// Source fingerprint

function project(): string {
  const dir = tmp('proj');
  fs.mkdirSync(path.join(dir, 'pkg', 'build'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'build', 'lib'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'dist'), { recursive: true });
  fs.mkdirSync(path.join(dir, '.git'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'setup.py'), 'from setuptools import setup\nsetup(name="p")\n');
  fs.writeFileSync(path.join(dir, 'pkg', '__init__.py'), 'x = 1\n');
  fs.writeFileSync(path.join(dir, 'pkg', 'build', 'gen.py'), '# nested build/ is source\n');
  fs.writeFileSync(path.join(dir, 'pkg', 'big.bin'), crypto.randomBytes(3 << 20));
  fs.writeFileSync(path.join(dir, 'build', 'lib', 'p.o'), 'host object');
  fs.writeFileSync(path.join(dir, 'dist', 'p-1.whl'), 'old wheel');
  fs.writeFileSync(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  fs.symlinkSync('pkg/__init__.py', path.join(dir, 'link'));
  // Below the top level: fetchSource lists the top level as UTF-8 strings and cannot copy such a name there.
  fs.writeFileSync(Buffer.concat([Buffer.from(`${dir}/pkg/`), Buffer.from([0x6e, 0xff, 0x2e, 0x74])]), 'a name that is not UTF-8');
  return dir;
}

test('a directory fingerprint follows contents, names, modes and symlinks, not build/, dist/ or times', async (t) => {
  const dir = project();
  const fp = () => sourceFingerprint({ kind: 'path', path: dir });
  const base = await fp();
  t.regex(base, /^tree:[0-9a-f]{64}$/);
  t.is(await fp(), base);

  const changes: [string, () => void, () => void][] = [
    ['a file changes', () => fs.appendFileSync(path.join(dir, 'pkg', '__init__.py'), 'y = 2\n'), () => fs.writeFileSync(path.join(dir, 'pkg', '__init__.py'), 'x = 1\n')],
    ['a big file changes', () => fs.writeFileSync(path.join(dir, 'pkg', 'big.bin'), crypto.randomBytes(3 << 20)), () => {}],
    ['a file is added', () => fs.writeFileSync(path.join(dir, 'pkg', 'new.py'), ''), () => fs.rmSync(path.join(dir, 'pkg', 'new.py'))],
    ['an empty directory is added', () => fs.mkdirSync(path.join(dir, 'empty')), () => fs.rmdirSync(path.join(dir, 'empty'))],
    ['a mode changes', () => fs.chmodSync(path.join(dir, 'setup.py'), 0o755), () => fs.chmodSync(path.join(dir, 'setup.py'), 0o644)],
    ['a symlink points elsewhere', () => { fs.rmSync(path.join(dir, 'link')); fs.symlinkSync('setup.py', path.join(dir, 'link')); }, () => {}],
    ['a nested build/ changes', () => fs.appendFileSync(path.join(dir, 'pkg', 'build', 'gen.py'), 'z\n'), () => {}],
    ['.git changes (it is copied)', () => fs.writeFileSync(path.join(dir, '.git', 'HEAD'), 'ref: refs/heads/other\n'), () => {}],
    ['a file is renamed', () => fs.renameSync(path.join(dir, 'setup.py'), path.join(dir, 'setup2.py')), () => fs.renameSync(path.join(dir, 'setup2.py'), path.join(dir, 'setup.py'))],
    ['a non-UTF-8 name\'s file changes', () => fs.appendFileSync(Buffer.concat([Buffer.from(`${dir}/pkg/`), Buffer.from([0x6e, 0xff, 0x2e, 0x74])]), '!'), () => {}],
  ];
  let previous = base;
  for (const [what, change, undo] of changes) {
    change();
    const now = await fp();
    t.not(now, previous, what);
    undo();
    previous = await fp();
  }

  const settled = await fp();
  fs.writeFileSync(path.join(dir, 'build', 'lib', 'p.o'), 'another host object');
  fs.writeFileSync(path.join(dir, 'build', 'new.o'), '');
  fs.rmSync(path.join(dir, 'dist'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'dist'), 'now a file');
  const later = new Date(Date.now() + 60_000);
  fs.utimesSync(path.join(dir, 'setup.py'), later, later);
  t.is(await fp(), settled, 'build/, dist/ and times do not count');
});

test('a directory fingerprint equals that of what fetchSource copies', async (t) => {
  const dir = project();
  const dest = path.join(tmp('fetched'), 'src');
  await fetchSource(createContext({ cacheDir: tmp('cache') }), { kind: 'path', path: dir }, dest);
  t.false(fs.existsSync(path.join(dest, 'build')));
  t.is(await sourceFingerprint({ kind: 'path', path: dest }), await sourceFingerprint({ kind: 'path', path: dir }));
});

test('a few thousand files are fingerprinted quickly', async (t) => {
  const dir = tmp('many');
  for (let d = 0; d < 50; d++) {
    fs.mkdirSync(path.join(dir, `d${d}`));
    for (let f = 0; f < 60; f++) fs.writeFileSync(path.join(dir, `d${d}`, `f${f}.c`), `int f${d}_${f}(void) { return ${f}; }\n`.repeat(20));
  }
  const t0 = performance.now();
  await sourceFingerprint({ kind: 'path', path: dir });
  const ms = performance.now() - t0;
  t.log(`3000 files: ${Math.round(ms)} ms`);
  t.true(ms < 5000);
});

test('an sdist is fingerprinted by name and contents; git by commit and submodules', async (t) => {
  const d = tmp('sdist');
  const a = path.join(d, 'p-1.0.tar.gz');
  fs.writeFileSync(a, 'tarball');
  const fa = await sourceFingerprint({ kind: 'path', path: a });
  t.regex(fa, /^file:[0-9a-f]{64}$/);
  const b = path.join(tmp('sdist'), 'p-1.0.tar.gz');
  fs.writeFileSync(b, 'tarball');
  t.is(await sourceFingerprint({ kind: 'path', path: b }), fa, 'the directory it lies in does not count');
  const c = path.join(d, 'p-1.1.tar.gz');
  fs.writeFileSync(c, 'tarball');
  t.not(await sourceFingerprint({ kind: 'path', path: c }), fa, 'the commands name the file');
  fs.writeFileSync(b, 'tarball2');
  t.not(await sourceFingerprint({ kind: 'path', path: b }), fa);

  const git = { kind: 'git' as const, url: 'https://h/r.git', ref: 'v1', submodules: true };
  const commit = 'a'.repeat(40);
  t.is(await sourceFingerprint(git, { origin: 'https://h/r.git@v1', commit }), `git:${commit}+submodules`);
  t.is(await sourceFingerprint({ ...git, submodules: false }, { origin: 'x', commit }), `git:${commit}`);
  await t.throwsAsync(sourceFingerprint(git), { message: /needs the fetched commit/ });
});

// ---------------------------------------------------------------------------------------------
// The key

const parts: WheelKeyParts = {
  image: 'a'.repeat(64),
  arch: 'aarch64',
  python: '3.11',
  target: 'torch@1.1.0',
  targetVersion: '1.1.0',
  env: { MAX_JOBS: '1', USE_CUDA: '0' },
  commands: [['python3', 'setup.py', 'bdist_wheel']],
  pip: ['numpy==1.16.6'],
  apt: ['gcc', 'g++'],
  needs: ['b'.repeat(64), '9'.repeat(64)],
  source: `git:${'c'.repeat(40)}+submodules`,
  compiler: 'gcc version 12.2.0 (Debian 12.2.0-14) --build=aarch64-linux-gnu',
};

test('the key changes with each of its inputs', (t) => {
  const base = wheelCacheKey(parts);
  t.regex(base, /^[0-9a-f]{64}$/);
  const variants: Partial<WheelKeyParts>[] = [
    { image: 'd'.repeat(64) },
    { arch: 'armhf' },
    { python: '3.12' },
    { target: 'torch@1.2.0' },
    { targetVersion: '1.2.0' },
    { targetVersion: undefined },
    { env: { ...parts.env, USE_CUDA: '1' } },
    { env: { ...parts.env, EXTRA: '' } },
    { commands: [['python3', 'setup.py', 'bdist_wheel', '-v']] },
    { commands: [['python3', 'setup.py'], ['bdist_wheel']] },
    { pip: ['numpy==1.17.0'] },
    { apt: ['gcc', 'g++', 'libjpeg-dev'] },
    { needs: ['e'.repeat(64)] },
    { needs: [] },
    { source: `git:${'c'.repeat(40)}` },
    { compiler: 'gcc version 12.2.0 (Debian 12.2.0-14) --with-arch=armv6' },
  ];
  const keys = new Set([base]);
  for (const v of variants) keys.add(wheelCacheKey({ ...parts, ...v }));
  t.is(keys.size, variants.length + 1, 'every variant has a key of its own');
  t.throws(() => wheelCacheKey({ ...parts, image: '/images/a.img' }), { message: /not a sha256/ });
});

test('the key ignores key order, the order of apt and needs, and what is not an input', (t) => {
  const base = wheelCacheKey(parts);
  t.is(wheelCacheKey({ ...parts, env: { USE_CUDA: '0', MAX_JOBS: '1' } }), base);
  t.is(wheelCacheKey({ ...parts, apt: ['g++', 'gcc'], needs: [...parts.needs].reverse() }), base);
  // A wider object (the request, the plan) keys only the listed parts: --jobs, --accel, --out do not count.
  const wider = { ...parts, jobs: 16, accel: 'cross', out: '/tmp/out', workspace: '/w', persist: true, attach: 'kpartx' };
  t.is(wheelCacheKey(wider), base);
  // --jobs reaches env and commands only through the plan: plans made for the key use keyJobs.
  const onnxruntime = (jobs: number) => planTarget({ kind: 'recipe', name: 'onnxruntime', version: '1.23.0' }, { jobs, python: '3.11', arch: 'aarch64' });
  t.notDeepEqual(onnxruntime(3).commands, onnxruntime(12).commands, 'the plan itself carries --jobs: key a plan made with keyJobs');
  t.is(onnxruntime(keyJobs).env['MAX_JOBS'], '1');
});

// ---------------------------------------------------------------------------------------------
// Entries

async function fakeWheels(n: number, extra: Partial<ManifestWheel> = {}): Promise<{ files: string[]; entries: ManifestWheel[] }> {
  const dir = tmp('built');
  const files: string[] = [];
  const entries: ManifestWheel[] = [];
  for (let i = 0; i < n; i++) {
    const file = path.join(dir, `p${i}-1.0-cp311-cp311-linux_aarch64.whl`);
    fs.writeFileSync(file, crypto.randomBytes(50_000 + i));
    fs.chmodSync(file, 0o600);
    files.push(file);
    entries.push({
      file: path.basename(file),
      sha256: await hashFile(file),
      size: fs.statSync(file).size,
      tags: { python: ['cp311'], abi: ['cp311'], platform: ['linux_aarch64'] },
      name: `p${i}`,
      version: '1.0',
      target: `local:/src/p${i}`,
      source: { origin: `/src/p${i}` },
      env: {},
      commands: [['python3', '-m', 'pip', 'wheel', '.']],
      image: { path: '/images/a.img', sha256: 'a'.repeat(64), os: {}, python: '3.11', arch: 'aarch64' },
      seconds: 12.5,
      log: '/out/logs/p.log',
      ...extra,
    });
  }
  return { files, entries };
}

const keyOf = (s: string) => crypto.createHash('sha256').update(s).digest('hex');

test('stored wheels come back verified, root-owned, mode 0644, under wheels/<key[0:2]>/<key>/', async (t) => {
  const cache = tmp('cache');
  const key = keyOf('round trip');
  t.deepEqual(await lookupWheels(cache, key), { kind: 'miss' });
  const { files, entries } = await fakeWheels(2);
  t.is(await storeWheels(cache, key, files, entries), 'stored');

  const r = await lookupWheels(cache, key);
  if (r.kind !== 'hit') return t.fail(JSON.stringify(r));
  t.is(r.dir, path.join(cache, 'wheels', key.slice(0, 2), key));
  t.is(r.dir, wheelEntryDir(cache, key));
  t.deepEqual(r.entries, entries);
  for (const [i, f] of r.files.entries()) {
    t.is(path.dirname(f), r.dir);
    t.deepEqual(fs.readFileSync(f), fs.readFileSync(files[i]!));
    const st = fs.statSync(f);
    t.is(st.mode & 0o7777, 0o644);
    if (process.getuid?.() === 0) t.is(st.uid, 0);
  }
  t.deepEqual(fs.readdirSync(r.dir).sort(), ['entry.json', ...entries.map((e) => e.file)].sort());
  t.deepEqual(fs.readdirSync(path.dirname(r.dir)), [key], 'no temporary directory left');
  t.is(await storeWheels(cache, key, files, entries), 'exists');
});

test('storing refuses wheels that do not match their entries, and leaves nothing', async (t) => {
  const cache = tmp('cache');
  const key = keyOf('mismatch');
  const { files, entries } = await fakeWheels(1);
  fs.appendFileSync(files[0]!, 'changed after hashing');
  await t.throwsAsync(storeWheels(cache, key, files, entries), { message: /is not what its entry says/ });
  await t.throwsAsync(storeWheels(cache, key, [], entries), { message: /0 files for 1 entries/ });
  await t.throwsAsync(storeWheels(cache, key, ['/x/other.whl'], entries), { message: /no file for the entry/ });
  t.deepEqual(fs.readdirSync(path.join(cache, 'wheels', key.slice(0, 2))), []);
  t.deepEqual(await lookupWheels(cache, key), { kind: 'miss' });
});

test('a damaged entry is a miss with the reason, and is removed', async (t) => {
  const cache = tmp('cache');
  const damage: [string, (dir: string, e: ManifestWheel[]) => void, RegExp][] = [
    ['a flipped byte', (dir, e) => {
      const f = path.join(dir, e[1]!.file);
      const b = fs.readFileSync(f);
      b[100] = b[100]! ^ 1;
      fs.writeFileSync(f, b);
    }, /p1-1\.0-cp311-cp311-linux_aarch64\.whl with sha256 [0-9a-f]{64}, not [0-9a-f]{64}; removed it/],
    ['a truncated wheel', (dir, e) => fs.truncateSync(path.join(dir, e[0]!.file), 10), /with 10 bytes, not 50000/],
    ['a missing wheel', (dir, e) => fs.rmSync(path.join(dir, e[0]!.file)), /lacks p0-1\.0/],
    ['a symlinked wheel', (dir, e) => { const f = path.join(dir, e[0]!.file); fs.renameSync(f, `${f}.real`); fs.symlinkSync(`${f}.real`, f); }, /not as a regular file/],
    ['a corrupt entry.json', (dir) => fs.writeFileSync(path.join(dir, 'entry.json'), '{"format": 1, "wh'), /has no readable entry\.json/],
    ['an entry.json naming a path', (dir) => {
      const e = JSON.parse(fs.readFileSync(path.join(dir, 'entry.json'), 'utf8'));
      e.wheels[0].file = '../../../etc/x.whl';
      fs.writeFileSync(path.join(dir, 'entry.json'), JSON.stringify(e));
    }, /has an invalid entry\.json/],
  ];
  for (const [what, spoil, reason] of damage) {
    const key = keyOf(what);
    const { files, entries } = await fakeWheels(2);
    await storeWheels(cache, key, files, entries);
    spoil(wheelEntryDir(cache, key), entries);
    const r = await lookupWheels(cache, key);
    t.is(r.kind, 'damaged', what);
    if (r.kind === 'damaged') t.regex(r.reason, reason, what);
    t.false(fs.existsSync(wheelEntryDir(cache, key)), `${what}: removed`);
    t.deepEqual(fs.readdirSync(path.dirname(wheelEntryDir(cache, key))).filter((n) => n.startsWith('.')), [], `${what}: no trash left beside it`);
    t.deepEqual(await lookupWheels(cache, key), { kind: 'miss' });
    t.is(await storeWheels(cache, key, files, entries), 'stored', `${what}: stored again`);
  }
});

test('imgbuilds storing the same key at once leave one valid entry', async (t) => {
  const cache = tmp('cache');
  const key = keyOf('race');
  const moduleUrl = new URL('../../lib/wheel/cache.js', import.meta.url).href;
  const jobs = [];
  for (let i = 0; i < 6; i++) {
    // Each process stores its own wheel bytes under the same key: whichever renames first wins whole.
    const { files, entries } = await fakeWheels(2, { seconds: i });
    const spec = path.join(tmp('spec'), 'spec.json');
    fs.writeFileSync(spec, JSON.stringify({ cache, key, files, entries }));
    const script = `const m = await import(${JSON.stringify(moduleUrl)}); const s = JSON.parse(require('node:fs').readFileSync(${JSON.stringify(spec)}, 'utf8')); console.log(await m.storeWheels(s.cache, s.key, s.files, s.entries));`;
    jobs.push(execa('node', ['--input-type=commonjs', '-e', `(async () => { ${script} })().catch((e) => { console.error(e); process.exit(1); })`]));
  }
  // And within one process, where every store is past its first check before any renames.
  const mine = await fakeWheels(2, { seconds: 99 });
  const inProcess = await Promise.all([1, 2, 3, 4].map(() => storeWheels(cache, key, mine.files, mine.entries)));
  const results = [...(await Promise.all(jobs)).map((r) => r.stdout.trim()), ...inProcess];
  t.true(results.every((r) => r === 'stored' || r === 'exists'), results.join(' '));
  t.is(results.filter((r) => r === 'stored').length, 1, results.join(' '));
  const r = await lookupWheels(cache, key);
  if (r.kind !== 'hit') return t.fail(JSON.stringify(r));
  t.is(new Set(r.entries.map((e) => e.seconds)).size, 1, 'the files and entries of one process');
  t.deepEqual(fs.readdirSync(path.join(cache, 'wheels', key.slice(0, 2))), [key]);
});

// Pinned before the code moved into folders (and to be kept through any later move): a user's
// cache stays valid only while these exact bytes come out. A deliberate change of the key's
// inputs bumps wheelCacheFormat (or verificationLevel: verification level 3 moved both) and this pin with it. The local: key also stands for what the
// wheel front end does (its sha256 is an input): a changed lib/build/build-wheel.py builds every
// local:, git: and onnx wheel anew, as it should, and moves the first pin with the second.
test('the key bytes are pinned: a real local: plan with the wheel front end, and plain parts', (t) => {
  const local = planTarget({ kind: 'local', path: '/src/markupsafe' }, { jobs: keyJobs, python: '3.11', arch: 'aarch64' });
  const key = wheelCacheKey({ ...parts, target: local.id, targetVersion: local.version, env: local.env, commands: local.commands, pip: local.pip, source: 'tree:' + 'f'.repeat(64) });
  const frontend = crypto.createHash('sha256').update(fs.readFileSync(wheelFrontendSource)).digest('hex');
  t.is(frontend, '7257bf35a08a0e4c9851980ed60dbfa023f907ca4a8dc9bbad5b0d568e6a3b09', 'the wheel front end changed: its wheels are built anew (expected); update both pins');
  t.is(key, '0ec4a76276c3a1bc5b6f34a764df824b9be091f6d5a3d50384e88586df655c63');
  t.is(wheelCacheKey(parts), 'b3a35deac949a7f015aa28bb655539cdee53052aa4ad915a22ab29ee19710614');
});
