// The build on real sample images: a C extension compiled under qemu-user in the image's chroot,
// verified against the image, with the host exactly as before after every test.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { readElfHeader } from '../../lib/parse/elf.js';
import { readEntry, readZip } from '../../lib/parse/zip.js';
import { copySparse, fsckRoot, type HostContext, hostUnchanged, imgbuild, imgbuildOnTmpfs, sampleSync, sha256, tmpdir, waitForChrooted } from '../helpers/cli.js';

// These tests are about building: a wheel cache hit would skip the build they mean to exercise.
process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const fixtures = path.resolve('test/fixtures/py');
const hello = path.join(fixtures, 'cext-hello');
const second = path.join(fixtures, 'cext-second');
const aarch64 = sampleSync('aarch64');
const armhf = sampleSync('armhf');

function manifestOf(out: string) {
  return JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
}

/** ELF machine numbers of the ELF members of a wheel. */
function elfMachines(wheel: string): number[] {
  return readZip(wheel)
    .map((e) => readElfHeader(readEntry(wheel, e)))
    .filter((h) => h !== undefined)
    .map((h) => h.machine);
}

for (const [arch, image, machine, elf] of [['aarch64', aarch64, 'aarch64', 183], ['armhf', armhf, 'armv7l', 40]] as const) {
  test(`a C extension for ${arch}: right tag and ELF machine, imports in the chroot, manifest right, image unchanged`, async (t) => {
    const before = await sha256(image);
    const out = tmpdir();
    const r = await imgbuild([image, '--target', `local:${hello}`, '--out', out, '--json']);
    t.is(r.exitCode, 0, r.all);
    const file = `imgbuild_hello-1.0.0-cp311-cp311-linux_${machine}.whl`;
    t.true(fs.existsSync(path.join(out, file)), fs.readdirSync(out).join(' '));
    t.deepEqual(elfMachines(path.join(out, file)), [elf]);

    const m = manifestOf(out);
    t.deepEqual(JSON.parse(r.stdout), m, '--json prints the manifest');
    t.is(m.wheels.length, 1);
    const w = m.wheels[0];
    t.is(w.file, file);
    t.is(w.sha256, await sha256(path.join(out, file)));
    t.is(w.size, fs.statSync(path.join(out, file)).size);
    t.deepEqual(w.tags, { python: ['cp311'], abi: ['cp311'], platform: [`linux_${machine}`] });
    t.is(w.name, 'imgbuild_hello');
    t.is(w.version, '1.0.0');
    t.is(w.target, `local:${hello}`);
    t.is(w.env.MAX_JOBS, w.env.CMAKE_BUILD_PARALLEL_LEVEL);
    t.is(w.image.path, image);
    t.is(w.image.sha256, before);
    t.is(w.image.os.VERSION_CODENAME, 'bookworm');
    t.is(w.image.glibc, '2.36');
    t.is(w.image.python, '3.11');
    t.regex(w.compiler, /\(Debian 12\.[^)]*\) 12\.\d/);
    t.true(w.seconds > 0);
    t.true(fs.existsSync(w.log));
    t.regex(fs.readFileSync(w.log, 'utf8'), /imported imgbuild_hello from \/tmp\/imgbuild-verify-/);

    t.is(await sha256(image), before, 'the image is byte-identical after the build');
    fs.rmSync(out, { recursive: true });
  });
}

test('two local packages, the second needing the first at build time: built in order in one run', async (t) => {
  const out = tmpdir();
  // Given in the wrong order on purpose: the build orders them by needs=.
  const r = await imgbuild([aarch64, '-t', `local:${second},needs=imgbuild-hello`, '-t', `local:${hello}`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const m = manifestOf(out);
  t.deepEqual(m.wheels.map((w: { name: string }) => w.name), ['imgbuild_hello', 'imgbuild_second']);
  t.regex(fs.readFileSync(m.wheels[1].log, 'utf8'), /imported imgbuild_second/);
  // Stdout lists exactly the wheels of this run.
  t.deepEqual(r.stdout.trim().split('\n').map((l) => path.basename(l)), m.wheels.map((w: { file: string }) => w.file));
  fs.rmSync(out, { recursive: true });
});

test('a wheel linking a library that exists only in the build layer is caught by the NEEDED check', async (t) => {
  const out = tmpdir();
  const r = await imgbuild([aarch64, '-t', `local:${path.join(fixtures, 'cext-needs-lib')}`, '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /needs libimgbuildextra\.so, which the image does not have/);
  t.regex(r.stderr, /exists only in the build layer/);
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), [], 'the failing wheel is not reported');
  fs.rmSync(out, { recursive: true });
});

test('a C syntax error: the target, the exit code, the last lines and the log path; clean host', async (t) => {
  const out = tmpdir();
  const before = await sha256(armhf);
  const r = await imgbuild([armhf, '-t', `local:${path.join(fixtures, 'cext-broken')}`, '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /error: local:\S+cext-broken: python3 \/workspace\/\.imgbuild\/build-wheel\.py dist \. failed with exit code 1/);
  t.regex(r.stderr, /--- last lines of \S+imgbuild-broken\.log ---/);
  t.regex(r.stderr, /broken\.c:\d+:\d+: error: expected/);
  t.regex(r.stderr, /build-wheel: setuptools\.build_meta failed to build the wheel of \/workspace\/src\/\S+ \(error: command .*gcc.* failed with exit code 1\)/);
  t.regex(r.stderr, /hint: full log: \S+logs\/imgbuild-broken\.log/);
  t.regex(fs.readFileSync(path.join(out, 'logs', 'imgbuild-broken.log'), 'utf8'), /broken\.c:\d+:\d+: error: expected/);
  t.is(await sha256(armhf), before);
  fs.rmSync(out, { recursive: true });
});

test('wheels of targets that finished stay in --out when a later one fails', async (t) => {
  const out = tmpdir();
  const r = await imgbuild([aarch64, '-t', `local:${hello}`, '-t', `local:${path.join(fixtures, 'cext-broken')}`, '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.deepEqual(manifestOf(out).wheels.map((w: { name: string }) => w.name), ['imgbuild_hello']);
  t.true(fs.existsSync(path.join(out, 'imgbuild_hello-1.0.0-cp311-cp311-linux_aarch64.whl')));
  fs.rmSync(out, { recursive: true });
});

test('git:URL@REF: cloned on the host into the cache and built at the tag', async (t) => {
  const dir = tmpdir();
  const repo = path.join(dir, 'hello-repo');
  fs.cpSync(hello, repo, { recursive: true });
  const git = (...args: string[]) => execa('git', ['-C', repo, '-c', 'user.name=t', '-c', 'user.email=t@t', ...args]);
  await git('init', '-q');
  await git('add', '.');
  await git('commit', '-qm', 'v1');
  await git('tag', 'v1.0');
  // A later commit that would not build: the tag must be what is built.
  fs.writeFileSync(path.join(repo, 'hello.c'), 'not C\n');
  await git('commit', '-qam', 'broken');
  const out = path.join(dir, 'out');
  const cache = path.join(dir, 'cache');
  const r = await imgbuild(['--cache-dir', cache, aarch64, '-t', `git:${repo}@v1.0,name=imgbuild-hello`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = manifestOf(out).wheels[0];
  t.is(w.name, 'imgbuild_hello');
  t.is(w.source.origin, `${repo}@v1.0`);
  t.is(w.source.commit, (await git('rev-parse', 'v1.0^{commit}')).stdout.trim());
  t.is(fs.readdirSync(path.join(cache, 'git')).filter((n) => n.startsWith('hello-repo-') && !n.endsWith('.lock')).length, 1, 'the clone is cached');
  fs.rmSync(dir, { recursive: true });
});

test('--persist writes the build\'s installs into the image; the image stays a clean ext4', async (t) => {
  const dir = tmpdir();
  const image = await copySparse(aarch64, path.join(dir, 'persist.img'));
  const before = await sha256(image);
  const out = path.join(dir, 'out');
  const r = await imgbuild([image, '--persist', '-t', `local:${second},needs=imgbuild-hello`, '-t', `local:${hello}`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const m = manifestOf(out);
  const after = await sha256(image);
  t.not(after, before);
  t.is(m.image.sha256, after, 'with --persist the manifest has the image as it is after the build');
  // imgbuild-hello was installed to build imgbuild-second: with --persist it stays in the image.
  const run = await imgbuild(['run', image, '--', 'python3', '-c', 'import imgbuild_hello; print(imgbuild_hello.add(1, 2))']);
  t.is(run.exitCode, 0, run.all);
  t.is(run.stdout.trim(), '3');
  t.is(await fsckRoot(image), 0);
  fs.rmSync(dir, { recursive: true });
});

test('--dry-run prints the plan in order and changes nothing', async (t) => {
  const dir = tmpdir();
  const out = path.join(dir, 'never');
  const before = await sha256(aarch64);
  const r = await imgbuild([aarch64, '--dry-run', '-t', 'torchvision@0.4.0', '-t', 'torch@1.1.0', '--jobs', '2', '--out', out, '--source', `torchvision=${hello}`]);
  t.is(r.exitCode, 0, r.all);
  const text = r.stdout;
  t.regex(text, /host steps/);
  t.regex(text, /undo: detach it/);
  t.regex(text, /register a qemu-aarch64 binfmt_misc entry[^\n]*\n\s+undo: remove the entry/);
  t.true(text.indexOf('target 1/2: torch@1.1.0') < text.indexOf('target 2/2: torchvision@0.4.0'), 'torch before torchvision');
  for (const kv of ['USE_CUDA=OFF', 'USE_MKLDNN=OFF', 'USE_NNPACK=OFF', 'USE_QNNPACK=OFF', 'BUILD_TEST=0', 'MAX_JOBS=2']) t.true(text.includes(kv), kv);
  t.regex(text, /apt packages[^\n]*protobuf-compiler[^\n]*libopencv-dev[^\n]*libopenmpi-dev/);
  t.regex(text, /python3 setup\.py bdist_wheel/);
  t.regex(text, /Pillow<7/);
  t.regex(text, /source:\s+git https:\/\/github\.com\/pytorch\/pytorch\.git at v1\.1\.0 with submodules/);
  t.true(text.includes(`source:   ${hello} (copied on the host`), '--source replaces the fetched source');
  t.regex(r.stderr, /torch 1\.1\.0 is known to build for Python 3\.5 to 3\.7, the image has 3\.11/);
  t.false(fs.existsSync(out), '--out is not even created');
  t.is(await sha256(aarch64), before);
  const json = await imgbuild([aarch64, '--dry-run', '--json', '-t', 'onnx@1.11.0', '--out', out]);
  t.is(json.exitCode, 0, json.all);
  const plan = JSON.parse(json.stdout);
  t.is(plan.targets[0].id, 'onnx@1.11.0');
  t.is(plan.facts.arch, 'aarch64');
  fs.rmSync(dir, { recursive: true });
});

test('bad input: a clear error and its exit code before anything is mounted', async (t) => {
  const dir = tmpdir();
  const notWritable = path.join(dir, 'file');
  fs.writeFileSync(notWritable, '');
  const journals = () => (fs.existsSync('/run/imgbuild/sessions') ? fs.readdirSync('/run/imgbuild/sessions').length : 0);
  const j0 = journals();
  const cases: [string[], number, RegExp][] = [
    [['-t', 'tensorflow@2.0'], 2, /no recipe called tensorflow/],
    [['-t', 'torch@0.0.1'], 2, /unknown torch version 0\.0\.1[\s\S]*known torch versions: 1\.1\.0/],
    [['-t', 'torch==1.1.0'], 2, /write torch@1\.1\.0/],
    [[], 2, /no --target given/],
    [['-t', 'torch@1.1.0', '--source', `torch=${path.join(dir, 'missing')}`], 3, /--source torch: \S+missing does not exist/],
    [['-t', 'torch@1.1.0', '--source', `torch=${dir}`], 3, /is not a Python project/],
    [['-t', 'torch@1.1.0', '--source', `onnx=${hello}`], 2, /--source onnx: no target called onnx/],
    [['-t', `local:${path.join(dir, 'nope')}`], 3, /does not exist/],
    [['-t', `local:${hello}`, '--out', path.join(notWritable, 'sub')], 3, /--out \S+ is not writable/],
    [['-t', `local:${hello}`, '--jobs', 'lots'], 2, /--jobs lots/],
    [['-t', `local:${second},needs=imgbuild-hello`], 2, /needs imgbuild-hello, which no target builds/],
    [['-t', `local:${hello}`, '--with-wheel', path.join(dir, 'x.whl')], 3, /--with-wheel \S+: no such file/],
  ];
  for (const [args, code, message] of cases) {
    const r = await imgbuild([aarch64, ...args, ...(args.includes('--out') ? [] : ['--out', path.join(dir, 'out')])]);
    t.is(r.exitCode, code, `${args.join(' ')}: ${r.all}`);
    t.regex(r.stderr, message, args.join(' '));
    t.notRegex(r.stderr, /lock image|attach partition/, `${args.join(' ')}: nothing was attached`);
  }
  t.is(journals(), j0, 'no session was even started');
  const missing = await imgbuild([path.join(dir, 'no.img'), '-t', `local:${hello}`, '--out', path.join(dir, 'out')]);
  t.is(missing.exitCode, 3, missing.all);
  fs.rmSync(dir, { recursive: true });
});

test('--with-wheel supplies a need: a ready wheel is installed before the target that needs it', async (t) => {
  const dir = tmpdir();
  const first = await imgbuild([aarch64, '-t', `local:${hello}`, '--out', path.join(dir, 'a')]);
  t.is(first.exitCode, 0, first.all);
  const wheel = path.join(dir, 'a', 'imgbuild_hello-1.0.0-cp311-cp311-linux_aarch64.whl');
  const r = await imgbuild([aarch64, '-t', `local:${second},needs=imgbuild-hello`, '--with-wheel', wheel, '--out', path.join(dir, 'b')]);
  t.is(r.exitCode, 0, r.all);
  t.deepEqual(manifestOf(path.join(dir, 'b')).wheels.map((w: { name: string }) => w.name), ['imgbuild_second']);
  fs.rmSync(dir, { recursive: true });
});

test('a workspace too small for the build stops before the build session, with the numbers', async (t) => {
  const dir = tmpdir();
  const ws = path.join(dir, 'ws');
  fs.mkdirSync(ws);
  const small = imgbuildOnTmpfs(ws, '64m', [aarch64, '-t', `local:${hello}`, '--workspace', ws, '--out', path.join(dir, 'out')]);
  const r = await small.run;
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, /not enough space in the workspace \(\S+\): 64 MiB free, the build needs about 1\.\d GiB/);
  t.regex(r.stderr, /--workspace DIR on a larger filesystem/);
  t.deepEqual(small.left(), [], 'nothing was written to the workspace');
  fs.rmSync(dir, { recursive: true });
});

test('Ctrl-C on a terminal (SIGINT to the whole process group) mid-compile: exit 130, everything undone', async (t) => {
  const dir = tmpdir();
  const child = execa('node', [path.resolve('dist/imgbuild.mjs'), aarch64, '-t', `local:${hello}`, '--out', path.join(dir, 'out')], { reject: false, all: true, detached: true });
  await waitForChrooted(/build-wheel\.py/, 120_000);
  process.kill(-child.pid!, 'SIGINT');
  const r = await child;
  t.is(r.exitCode, 130, r.all);
  t.regex(r.all ?? '', /interrupted by SIGINT/);
  t.notRegex(r.all ?? '', /cleanup step failed|cleanup incomplete/);
  fs.rmSync(dir, { recursive: true });
});

test('builds for two images at once, each with its default workspace', async (t) => {
  const dir = tmpdir();
  const [a, b] = await Promise.all([
    imgbuild([aarch64, '-t', `local:${hello}`, '--out', path.join(dir, 'a')]),
    imgbuild([armhf, '-t', `local:${hello}`, '--out', path.join(dir, 'b')]),
  ]);
  t.is(a.exitCode, 0, a.all);
  t.is(b.exitCode, 0, b.all);
  t.true(fs.existsSync(path.join(dir, 'a', 'imgbuild_hello-1.0.0-cp311-cp311-linux_aarch64.whl')));
  t.true(fs.existsSync(path.join(dir, 'b', 'imgbuild_hello-1.0.0-cp311-cp311-linux_armv7l.whl')));
  fs.rmSync(dir, { recursive: true });
});
