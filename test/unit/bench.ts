// Pure parts of the benchmark: timing, medians, apt source conversion, --help parsing, the report.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { capabilities, parseHelpOptions } from '../../bench/cli-help.js';
import { type BenchResults, formatReport } from '../../bench/report.js';
import { parseShowsrcVersions, parseSourceSpec, sourcesFor, toDebSrc, upstreamTarball } from '../../bench/sources.js';
import { addRep, median, parseTiming, timedScript } from '../../bench/stats.js';
import { addNonce } from '../../bench/wheel.js';
import { chooseSampleSources, hostOsId } from '../../lib/image-tools/sample-sources.js';
import { PreconditionError, UsageError } from '../../lib/core/errors.js';
import { selectWorkloads, workloads } from '../../bench/workloads.js';

const fixture = (name: string) => fs.readFileSync(path.resolve('test/fixtures/bench', name), 'utf8');

test('median of odd and even counts; a failed repetition spoils the row', (t) => {
  t.is(median([3, 1, 2]), 2);
  t.is(median([4, 1, 3, 2]), 2.5);
  t.throws(() => median([]));
  t.deepEqual(addRep(addRep(undefined, 1), 2), { kind: 'ok', seconds: [1, 2] });
  t.deepEqual(addRep({ kind: 'failed', reason: 'x' }, 1), { kind: 'failed', reason: 'x' });
});

test('the timed script times only the command, in its directory, and reports its exit status', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-'));
  const log = path.join(dir, 'log');
  const script = timedScript(dir, `pwd; echo "$BENCH_X"; sleep 0.2; exit 3`, log, { BENCH_X: "it's" });
  const out = execFileSync('sh', ['-c', script], { encoding: 'utf8' });
  const timing = parseTiming(out)!;
  t.is(timing.status, 3);
  t.true(timing.seconds >= 0.2 && timing.seconds < 2, String(timing.seconds));
  t.is(fs.readFileSync(log, 'utf8'), `${dir}\nit's\n`);
  t.is(parseTiming('no mark here'), undefined);
  fs.rmSync(dir, { recursive: true });
});

test('host apt sources become deb-src entries: deb822 stanzas and one-line lists', (t) => {
  const deb822 = 'Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb\nURIs: http://m.example/off\nSuites: x\nEnabled: no\n\nTypes: deb-src\nURIs: http://m.example/src\nSuites: y\n';
  t.is(toDebSrc('a.sources', deb822), 'Types: deb-src\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\nTypes: deb-src\nURIs: http://m.example/src\nSuites: y\n');
  t.is(toDebSrc('a.sources', 'Types: debian\nURIs: u\n'), '');
  t.is(toDebSrc('a.sources', 'Types: deb deb-src\nURIs: u\nSuites: s\nComponents: main\n'), 'Types: deb-src\nURIs: u\nSuites: s\nComponents: main\n');
  const list = '# comment\ndeb [signed-by=/k.gpg] http://m.example/debian bookworm main\ndeb-src http://m.example/debian bookworm main\n  deb http://m.example/sec bookworm-security main';
  t.is(toDebSrc('x.list', list), 'deb-src [signed-by=/k.gpg] http://m.example/debian bookworm main\ndeb-src http://m.example/debian bookworm main\ndeb-src http://m.example/sec bookworm-security main');
});

test('another release\'s sources (onnx/trixie): the host\'s mirrors for its own release, the suite changed, -security and -updates left out', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-suites-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const a = path.join(dir, 'debian.sources');
  fs.writeFileSync(a, 'Types: deb\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb\nURIs: http://m.example/sec\nSuites: bookworm-security\nComponents: main\n\nTypes: deb\nURIs: http://m.example/off\nSuites: bookworm\nEnabled: no\n');
  const b = path.join(dir, 'x.list');
  fs.writeFileSync(b, 'deb [signed-by=/j.gpg] http://m.example/mirror bookworm main contrib\ndeb http://m.example/sec bookworm-security main\n');
  t.is(sourcesFor('trixie', [a, b], 'bookworm', 'deb-src'), 'Types: deb-src\nURIs: http://m.example/debian\nSuites: trixie\nComponents: main\nSigned-By: /k.gpg\n\nTypes: deb-src\nURIs: http://m.example/mirror\nSuites: trixie\nComponents: main\nSigned-By: /j.gpg\n');
  t.is(sourcesFor('trixie', [a], 'bullseye'), '', 'no mirror of the host release: nothing to ask');
  t.deepEqual(parseSourceSpec('onnx/trixie'), { pkg: 'onnx', suite: 'trixie' });
  t.deepEqual(parseSourceSpec('pytorch-vision'), { pkg: 'pytorch-vision' });
});

test('apt-cache showsrc versions and the upstream tarball among downloads', (t) => {
  const showsrc = 'Package: brotli\nBinary: brotli\nVersion: 1.0.9-2\n\nPackage: brotli\nVersion: 1.0.9-2+deb12u1\n\nPackage: other\nVersion: 9\n\nPackage: brotli\nVersion: 1.0.9-2\n';
  t.deepEqual(parseShowsrcVersions(showsrc, 'brotli'), ['1.0.9-2', '1.0.9-2+deb12u1']);
  t.is(upstreamTarball(['brotli_1.0.9-2.dsc', 'brotli_1.0.9-2.debian.tar.xz', 'brotli_1.0.9.orig.tar.gz'], 'brotli'), 'brotli_1.0.9.orig.tar.gz');
  t.is(upstreamTarball(['tinyxml2_9.0.0+dfsg.orig.tar.xz', 'tinyxml2_9.0.0+dfsg.orig.tar.xz.asc'], 'tinyxml2'), 'tinyxml2_9.0.0+dfsg.orig.tar.xz');
  t.is(upstreamTarball(['dash_0.5.12-2.tar.xz', 'dash_0.5.12-2.dsc'], 'dash'), 'dash_0.5.12-2.tar.xz');
  t.is(upstreamTarball(['markupsafe_2.1.2-1.dsc'], 'markupsafe'), undefined);
  t.is(upstreamTarball(['lua5.4_5.4.4.orig.tar.gz'], 'lua5.4'), 'lua5.4_5.4.4.orig.tar.gz');
});

test('--help: accel modes, distcc hosts, ccache and the wheel-cache bypass of this imgbuild', (t) => {
  const opts = parseHelpOptions(fixture('run-help.txt'));
  t.deepEqual(opts.get('attach')?.choices, ['auto', 'kpartx', 'partscan', 'partx', 'offset']);
  t.true(opts.has('rw'));
  const caps = capabilities(fixture('run-help.txt'), fixture('build-help.txt'));
  t.deepEqual(caps.runAccel, ['cross', 'distcc']);
  t.true(caps.runHasAccel && caps.buildHasAccel && caps.distccHosts && caps.runCcache);
  t.is(caps.noWheelCache, '--no-wheel-cache');
  // An imgbuild from before acceleration: emulation only, said so.
  const old = 'Options:\n      --workspace           host directory bound at /workspace\n                            (nosuid,nodev)                              [string]\n      --rw                  write into the image [boolean]\n';
  const none = capabilities(old, old);
  t.false(none.runHasAccel);
  t.deepEqual(none.runAccel, []);
  t.is(none.noWheelCache, undefined);
});

test('the nonce reaches every C and C++ file and survives preprocessing', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-nonce-'));
  fs.mkdirSync(path.join(dir, 'sub'));
  for (const f of ['a.c', 'sub/b.cc', 'c.h', 'setup.py']) fs.writeFileSync(path.join(dir, f), 'int x;\n');
  t.is(addNonce(dir, 'abc123'), 2);
  t.regex(fs.readFileSync(path.join(dir, 'sub/b.cc'), 'utf8'), /"abc123"/);
  t.is(fs.readFileSync(path.join(dir, 'c.h'), 'utf8'), 'int x;\n');
  fs.rmSync(dir, { recursive: true });
});

test('workloads: a C library, a C++ project and C-extension wheels; unknown ids refused', (t) => {
  t.deepEqual(selectWorkloads(undefined).map((w) => w.id), workloads.map((w) => w.id));
  t.deepEqual(selectWorkloads(['brotli']).map((w) => w.source), ['brotli']);
  t.throws(() => selectWorkloads(['nope']), { message: /unknown workload nope/ });
  const lua = workloads.find((w) => w.id === 'lua')!;
  t.is(typeof lua.cross === 'function' && lua.cross(2, { cc: 'aarch64-linux-gnu-gcc-12', cxx: '', ar: 'aarch64-linux-gnu-ar', ranlib: 'r' }), "make -j2 linux CC='aarch64-linux-gnu-gcc-12 -std=gnu99' AR='aarch64-linux-gnu-ar rcu' RANLIB=r");
});

const ok = (...seconds: number[]) => ({ kind: 'ok' as const, seconds });

/** Results with the header fields filled in; the parts a test is about come from it. */
function results(parts: Pick<BenchResults, 'accelModes' | 'builds' | 'session' | 'wheel' | 'notes'>): BenchResults {
  return { date: '2026-01-01T00:00:00Z', host: 'test host', image: 'sample.img', commit: 'abc1234', reps: 3, sessionReps: 10, jobs: 2, ...parts };
}

test('the report: medians, ratios against native, and each target met or missed', (t) => {
  const r = results({
    accelModes: ['cross'],
    builds: [
      { id: 'lua', title: 'Lua', compileHeavy: true, native: ok(4, 4.2, 3.8), cross: ok(4.1), emulated: ok(60, 62, 64), accel: { cross: ok(5, 5, 5) } },
      { id: 'tiny', title: 'Tiny', compileHeavy: true, native: ok(2), cross: { kind: 'skipped', reason: 'n/a' }, emulated: ok(20), accel: { cross: ok(2.4) } },
      { id: 'ms', title: 'MS', compileHeavy: false, native: ok(1), cross: { kind: 'skipped', reason: 'n/a' }, emulated: ok(13), accel: { cross: { kind: 'failed', reason: 'boom' } } },
    ],
    session: { imgbuild: ok(0.5, 0.6, 0.55), imgbuildAccel: { kind: 'skipped', reason: 'no' }, raw: ok(0.1), node: ok(0.25) },
    wheel: { project: 'brotli', mode: 'cross', cold: ok(40), warm: ok(6), cached: ok(1.5), notes: ['a note'] },
    notes: ['top note'],
  });
  const text = formatReport(r);
  t.regex(text, /\| Lua \| 4.00 s \| 4.10 s \| 62.0 s \| 5.00 s \| 15.5x \| 1.25x \| met \|/);
  t.regex(text, /\| Tiny \| 2.00 s \| skipped \| 20.0 s \| 2.40 s \| 10.0x \| 1.20x \| met \|/);
  t.regex(text, /\| MS \| 1.00 s \| skipped \| 13.0 s \| FAILED \| 13.0x \| – \| n\/a \(not compile-bound\) \|/);
  t.regex(text, /- ms accel cross: failed: boom/);
  t.regex(text, /\| `imgbuild run IMAGE -- true` \| 0.550 s \| 5.50x \| \*\*missed\*\* \(<= 0.3 s\) \|/);
  t.regex(text, /overhead over the same mounts by hand: 0.450 s/);
  t.regex(text, /\| rebuild with a warm ccache \(wheel cache bypassed\) \| 6.00 s \| 0.15x \| met \(<= 0.2x cold\) \|/);
  t.regex(text, /\| repeat of the same build \(wheel cache\) \| 1.50 s \| 0.04x \| met \(<= 2 s\) \|/);
  t.regex(text, /lua: the host cross gcc alone 1.02x native; accel cross 1.22x of the host cross gcc\./);
  t.regex(text, /- top note/);
});

test('the accel target is judged by --accel cross, not by the best of the modes', (t) => {
  const r = results({
    accelModes: ['cross', 'distcc'],
    builds: [{ id: 'tiny', title: 'Tiny', compileHeavy: true, native: ok(2), cross: ok(2.2), emulated: ok(20), accel: { cross: ok(2.8), distcc: ok(2.4) } }],
    session: { imgbuild: ok(0.2), imgbuildAccel: ok(0.3), raw: ok(0.1), node: ok(0.1) },
    wheel: { project: 'brotli', mode: 'cross', cold: ok(40), warm: ok(6), cached: ok(1.5), notes: [] },
    notes: [],
  });
  const text = formatReport(r);
  t.regex(text, /\| target: accel cross <= 1.3x \|/);
  t.regex(text, /\| Tiny \| 2.00 s \| 2.20 s \| 20.0 s \| 2.80 s \| 2.40 s \| 10.0x \| 1.40x \| 1.20x \| \*\*missed\*\* \|/);
});

test('small wheels are judged by --accel full (<= 1.5x native); a build without Python has no full column of its own', (t) => {
  const r = results({
    accelModes: ['cross', 'full'],
    builds: [
      { id: 'ms', title: 'MS', compileHeavy: false, native: ok(1), cross: { kind: 'skipped', reason: 'n/a' }, emulated: ok(13), accel: { cross: ok(6), full: ok(1.4) } },
      { id: 'lua', title: 'Lua', compileHeavy: true, native: ok(4), cross: ok(4.1), emulated: ok(60), accel: { cross: ok(5), full: { kind: 'skipped', reason: 'no Python in this build: the same as accel cross' } } },
    ],
    session: { imgbuild: ok(0.2), imgbuildAccel: ok(0.3), raw: ok(0.1), node: ok(0.1) },
    wheel: { project: 'brotli', mode: 'cross', cold: ok(40), warm: ok(6), cached: ok(1.5), notes: [] },
    notes: [],
  });
  const text = formatReport(r);
  t.regex(text, /\| target: accel cross <= 1.3x; small wheels accel full <= 1.5x \|/);
  t.regex(text, /\| MS \| 1.00 s \| skipped \| 13.0 s \| 6.00 s \| 1.40 s \| 13.0x \| 6.00x \| 1.40x \| met \|/);
  t.regex(text, /\| Lua \| 4.00 s \| 4.10 s \| 60.0 s \| 5.00 s \| skipped \| 15.0x \| 1.25x \| – \| met \|/);
});

test('tree creation: what the first --accel full session in an empty cache made, and how long making it took; none needed on the host\'s own release', (t) => {
  const base = { accelModes: [], builds: [], session: undefined, wheel: undefined, notes: [] } as unknown as Pick<BenchResults, 'accelModes' | 'builds' | 'session' | 'wheel' | 'notes'>;
  const made = formatReport({ ...results(base), trees: { first: ok(14.5), again: ok(0.5), trees: [{ name: 'trixie-aarch64-gcc14', bytes: 290 * 2 ** 20 }, { name: 'trixie-python3.13', bytes: 80 * 2 ** 20 }] } });
  t.regex(made, /## Toolchain and Python trees\n\nMade by the first `imgbuild run --accel full -- true` in an empty cache: trixie-aarch64-gcc14 \(290 MiB\), trixie-python3\.13 \(80 MiB\)\. That session: 14\.5 s; the next: 0\.500 s; making them took about 14\.0 s\./);
  const none = formatReport({ ...results(base), trees: { first: ok(0.9), again: ok(0.5), trees: [] } });
  t.regex(none, /None needed: the host has the image's gcc and Python/);
});

test('sample sources: the host\'s own, its mirrors for another release, or --mirror; an Ubuntu host needs --mirror for arm images', (t) => {
  t.deepEqual(chooseSampleSources({ hostId: 'debian', hostSuite: 'bookworm', suite: 'bookworm', arch: 'aarch64' }), { use: 'host' });
  t.deepEqual(chooseSampleSources({ hostId: 'debian', hostSuite: 'bookworm', suite: 'trixie', arch: 'armhf' }), { use: 'host-mirrors' });
  const e = t.throws(() => chooseSampleSources({ hostId: 'ubuntu', hostSuite: 'noble', suite: 'noble', arch: 'aarch64' }), { instanceOf: PreconditionError });
  t.regex(e.message, /this Ubuntu host's archive carries amd64 and i386 only, not arm64/);
  t.regex(e.hint ?? '', /--mirror URL with --suite/);
  t.deepEqual(chooseSampleSources({ hostId: 'ubuntu', hostSuite: 'noble', suite: 'noble', arch: 'x86_64' }), { use: 'host' }, 'an amd64 image needs no other archive');
  t.deepEqual(chooseSampleSources({ hostId: 'ubuntu', hostSuite: 'noble', suite: 'noble', arch: 'aarch64', mirror: 'http://ports.example/ubuntu-ports' }), { use: 'mirror', text: 'Types: deb\nURIs: http://ports.example/ubuntu-ports\nSuites: noble\nComponents: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n' });
  t.deepEqual(chooseSampleSources({ hostId: 'ubuntu', hostSuite: 'noble', suite: 'bookworm', arch: 'armhf', mirror: 'http://deb.example/debian' }), { use: 'mirror', text: 'Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' });
  t.throws(() => chooseSampleSources({ hostId: 'debian', hostSuite: 'bookworm', suite: 'bookworm', arch: 'aarch64', mirror: 'ports.example' }), { instanceOf: UsageError, message: /--mirror ports\.example is not an http\(s\) or file URL/ });
  t.is(hostOsId('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n'), 'ubuntu');
  t.is(hostOsId('ID="debian"\n'), 'debian');
});
