// Build code does not reach the host through the files imgbuild takes back: a wheel swapped for a
// link to a host file after it was built, a wheels/ directory swapped for a link to a host
// directory, a submodule naming a host-local repository; and a kept build tree is root's alone
// (it may hold setuid files the build made).
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { readZip } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, imgbuildOnTmpfs, sampleSync, sha256, tmpdir, waitForChrooted } from '../helpers/cli.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');

test('a wheel swapped for a link to a host file while it is checked: the wheel as built ships, never the host file', async (t) => {
  const out = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/swap-dist')}`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: { file: string; sha256: string }[] };
  const w = m.wheels[0]!;
  t.is(w.file, 'imgbuild_swap_dist-1.0-py3-none-any.whl');
  const shipped = path.join(out, w.file);
  t.true(fs.lstatSync(shipped).isFile());
  t.true(readZip(shipped).some((e) => e.name === 'imgbuild_swap_dist/__init__.py'), 'a wheel, not /etc/hostname');
  t.is(await sha256(shipped), w.sha256);
});

test('wheels/ in the build tree swapped for a link to a host directory: refused, nothing written there or into --out; the kept tree is root\'s alone', async (t) => {
  const target = '/tmp/imgbuild-test-attack-target';
  fs.rmSync(target, { recursive: true, force: true });
  fs.mkdirSync(target);
  t.teardown(() => fs.rmSync(target, { recursive: true, force: true }));
  const out = tmpdir();
  const ws = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/swap-wheels')}`, '--workspace', ws, '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /\/wheels in the build tree is not a plain directory \(it leads to \/tmp\/imgbuild-test-attack-target\)/);
  t.deepEqual(fs.readdirSync(target), [], 'nothing was written through the link');
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), []);
  t.is(fs.statSync(path.join(ws, 'build')).mode & 0o777, 0o700, 'the kept build tree is closed to other users');
});

test('a git: target whose .gitmodules names a host-local repository: the submodule is not fetched (exit 3, before anything is mounted)', async (t) => {
  const dir = tmpdir();
  const git = (cwd: string, ...args: string[]) => execa('git', ['-C', cwd, '-c', 'user.name=t', '-c', 'user.email=t@t', '-c', 'protocol.file.allow=always', ...args]);
  const secret = path.join(dir, 'host-secret');
  fs.mkdirSync(secret);
  fs.writeFileSync(path.join(secret, 'key.txt'), 'a host secret\n');
  await git(secret, 'init', '-q');
  await git(secret, 'add', '.');
  await git(secret, 'commit', '-qm', 'secret');
  const repo = path.join(dir, 'project');
  fs.cpSync(path.resolve('test/fixtures/py/cext-hello'), repo, { recursive: true });
  await git(repo, 'init', '-q');
  await git(repo, 'submodule', '-q', 'add', secret, 'third_party/secret');
  await git(repo, 'add', '.');
  await git(repo, 'commit', '-qm', 'v1');
  await git(repo, 'tag', 'v1.0');
  const cache = path.join(dir, 'cache');
  const r = await imgbuild(['--cache-dir', cache, aarch64, '-t', `git:${repo}@v1.0`, '--out', path.join(dir, 'out')]);
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, /cannot fetch the submodules of \S*project@v1\.0/);
  t.notRegex(r.stderr, /mount \/proc/, 'nothing was mounted');
  const cloned = fs.readdirSync(path.join(cache, 'git')).filter((n) => n.startsWith('project-') && !n.endsWith('.lock'));
  t.false(cloned.some((c) => fs.existsSync(path.join(cache, 'git', c, 'third_party', 'secret', 'key.txt'))), 'the host repository did not come in');
});

test('--timeout ends a hung build: stopped, undone, exit 1 naming the limit', async (t) => {
  const t0 = Date.now();
  const out = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/sleeps')},name=sleeps`, '--timeout', '20s', '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /--timeout 20s reached: stopping and cleaning up/);
  t.regex(r.stderr, /stopped after --timeout 20s: everything it changed is undone/);
  t.true(Date.now() - t0 < 90_000, 'it did not wait for the build');
  const bad = await imgbuild([aarch64, '--target', 'local:/nonexistent', '--timeout', 'soon']);
  t.is(bad.exitCode, 2, bad.all);
  t.regex(bad.stderr, /soon is not a duration of at least a second/);
});

test('a fork bomb in build code stops at --pids-limit: the build fails naming the limit, nothing is left', async (t) => {
  const t0 = Date.now();
  const out = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/fork-bomb')},name=fork-bomb`, '--pids-limit', '64', '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.all, /fork-bomb: the kernel refused fork number \d+: \[Errno 11\] Resource temporarily unavailable/);
  t.regex(r.stderr, /the build hit its limit of 64 processes and forks were refused; if it really needs more, raise --pids-limit/);
  t.true(Date.now() - t0 < 120_000, `it ended within its limits (${Date.now() - t0} ms)`);
  const bad = await imgbuild([aarch64, '--target', 'local:/nonexistent', '--pids-limit', 'lots']);
  t.is(bad.exitCode, 2, bad.all);
});

test('a build that slowly fills the workspace is stopped by the space guard before the filesystem is full: exit 1 naming it, nothing left', async (t) => {
  const ws = tmpdir();
  const project = path.join(tmpdir(), 'fill-slowly');
  fs.cpSync(path.resolve('test/fixtures/py/fill-disk'), project, { recursive: true });
  fs.writeFileSync(path.join(project, 'fill-target.txt'), 'fill\n');
  // Big enough for the build's estimate; the fixture then writes 40 MiB a second into it.
  const r = await imgbuildOnTmpfs(ws, '1200m', [aarch64, '--target', `local:${project},env=FILL_PAUSE=0.025`, '--workspace', ws, '--out', tmpdir()]).run;
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /the workspace's filesystem \(\S+\) is down to [\d.]+ \w+ free, below its 64 MiB reserve: stopping the build/);
  t.regex(r.stderr, /stopped: the workspace's filesystem \S+ fell to [\d.]+ \w+ free, below the 64 MiB imgbuild keeps/);
  t.notRegex(r.all, /No space left on device/, 'the guard came first');
});

// The tests' tmpfs workspaces live in a mount namespace of their own: a test run killed halfway
// (its finally never runs) once left a tmpfs mounted on the host.
test('a tmpfs workspace of the tests is never mounted on the host, while the run lives or after', async (t) => {
  const ws = tmpdir();
  const h = imgbuildOnTmpfs(ws, '64m', ['run', aarch64, '--workspace', ws, '--', 'sh', '-c', 'touch /workspace/made; sleep 5']);
  await waitForChrooted(/sleep 5/);
  const onHost = () => fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.split(' ')[4] === ws);
  t.deepEqual(onHost(), [], 'not mounted on the host while the run lives');
  const r = await h.run;
  t.is(r.exitCode, 0, r.all);
  t.deepEqual(h.left(), ['made'], 'the run wrote into the tmpfs');
  t.deepEqual(onHost(), [], 'nothing mounted on the host afterwards');
  t.deepEqual(fs.readdirSync(ws), [], 'the host directory under it untouched');
});

test('timeout= on one target stops its hung build: exit 1 naming the target and its timeout, undone', async (t) => {
  const t0 = Date.now();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/sleeps')},name=sleeps,timeout=15s`, '--out', tmpdir()]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /local:\S+sleeps: timeout=15s reached: stopping its build/);
  t.regex(r.stderr, /stopped after its timeout=15s: its processes were killed/);
  t.true(Date.now() - t0 < 90_000, 'it did not wait for the build');
});

test('a build that plants a setuid-root program and fails: the kept tree keeps the file, without its setuid bit, and no FIFO', async (t) => {
  const ws = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/plant-suid')},name=plant-suid`, '--workspace', ws, '--out', tmpdir()]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.all, /plant-suid: planted/);
  const found = (await execa('find', [ws, '-name', 'suid-true'])).stdout.trim().split('\n').filter(Boolean);
  t.is(found.length, 1, `the planted file is kept: ${found.join(' ')}`);
  t.is(fs.statSync(found[0]!).mode & 0o7777, 0o755, 'no setuid bit');
  t.is((await execa('find', [ws, '-type', 'p'])).stdout.trim(), '', 'no FIFO');
});

test('--out owned by a user who plants links in it and swaps it for a link mid-build: root writes only into the directory it opened, follows no link, and gives the files to that user', async (t) => {
  const nobody = 65534;
  const base = tmpdir();
  const project = path.join(base, 'slow-pure');
  fs.cpSync(path.resolve('test/fixtures/py/pure-hello'), project, { recursive: true });
  const setup = path.join(project, 'setup.py');
  fs.writeFileSync(setup, `import time\ntime.sleep(6)\n${fs.readFileSync(setup, 'utf8')}`);
  const canary = path.join(base, 'root-only');
  fs.writeFileSync(canary, 'host file\n', { mode: 0o600 });
  const out = path.join(base, 'out');
  const elsewhere = path.join(base, 'elsewhere');
  for (const d of [out, elsewhere]) {
    fs.mkdirSync(d);
    fs.chownSync(d, nobody, nobody);
  }
  const wheel = 'imgbuild_pure-1.0-py3-none-any.whl';
  fs.symlinkSync(canary, path.join(out, wheel));
  fs.symlinkSync(canary, path.join(out, 'manifest.json'));
  const run = imgbuild([aarch64, '--target', `local:${project}`, '--out', out]);
  await waitForChrooted(/build-wheel/, 120_000);
  t.is(fs.statSync(path.join(out, 'logs')).uid, 0, 'logs/ is root\'s while the build writes there');
  const moved = path.join(base, 'out-moved');
  fs.renameSync(out, moved);
  fs.symlinkSync(elsewhere, out);
  const r = await run;
  t.is(r.exitCode, 0, r.all);
  t.is(fs.readFileSync(canary, 'utf8'), 'host file\n', 'no link was written through');
  t.deepEqual(fs.readdirSync(elsewhere), [], 'nothing went where the link leads');
  for (const f of [wheel, 'manifest.json', 'logs']) {
    const st = fs.lstatSync(path.join(moved, f));
    t.false(st.isSymbolicLink(), f);
    t.is(st.uid, nobody, `${f} belongs to the owner of --out`);
  }
  t.true(readZip(path.join(moved, wheel)).some((e) => e.name === 'imgbuild_pure/__init__.py'));
  const m = JSON.parse(fs.readFileSync(path.join(moved, 'manifest.json'), 'utf8')) as { wheels: { log: string }[] };
  t.is(m.wheels[0]!.log, path.join(out, 'logs', 'imgbuild-pure.log'), 'paths are shown as given, never as a descriptor');
  t.deepEqual(fs.readdirSync(moved).filter((f) => f.startsWith('.')), [], 'no temporary file is left');
});
