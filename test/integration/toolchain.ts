// Toolchain trees: when the host has no cross gcc of the image's version (bullseye's gcc 10,
// trixie's gcc 14 on this bookworm host), the cross gcc of the image's own release is unpacked
// once by mmdebstrap and the build compiles natively with it. Real sample images, the real
// archive, real mounts and qemu; the host unchanged after each test.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { hostCrossVersions } from '../../lib/accel/index.js';
import { cliPath, type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { treeBuildMatchesEmulated } from '../helpers/toolchain.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const fixtures = path.resolve('test/fixtures/py');
const releases = [
  { name: 'bullseye armhf', image: sampleSync('armhf', 'mbr', 'bullseye'), arch: 'armhf', major: '10', tree: 'bullseye-armhf-gcc10', machine: 40, tag: 'cp39-cp39-linux_armv7l' },
  { name: 'trixie aarch64', image: sampleSync('aarch64', 'mbr', 'trixie'), arch: 'aarch64', major: '14', tree: 'trixie-aarch64-gcc14', machine: 183, tag: 'cp313-cp313-linux_aarch64' },
] as const;

for (const r of releases) {
  const onHost = hostCrossVersions(r.arch).includes(r.major);
  test(`${r.name}: a C++ extension compiled by the gcc ${r.major} of the image's own release from a toolchain tree; the same wheel as emulated gcc makes`, async (t) => {
    if (onHost) t.log(`the host has its own ${r.arch} gcc ${r.major}: --toolchain tree is what makes this test use a tree`);
    await treeBuildMatchesEmulated(t, r);
  });
}

test('auto in a fresh cache: the tree is made once (saying so, with its size), reused by the next build, listed and cleared by imgbuild cache; --toolchain host builds emulated and says why', async (t) => {
  const r = releases[0];
  if (hostCrossVersions(r.arch).includes(r.major)) return t.fail(`the host has an ${r.arch} gcc ${r.major}: this test needs a host without one`);
  const cache = tmpdir();
  const build = (...extra: string[]) => imgbuild(['--cache-dir', cache, r.image, '--target', `local:${path.join(fixtures, 'cext-hello')}`, '--out', tmpdir(), ...extra]);
  const first = await build();
  t.is(first.exitCode, 0, first.all);
  t.regex(first.all, /make the gcc 10 toolchain tree of bullseye for armhf \(mmdebstrap gcc-10-arm-linux-gnueabihf g\+\+-10-arm-linux-gnueabihf binutils-arm-linux-gnueabihf/);
  t.regex(first.all, /toolchain tree \S+\/toolchains\/bullseye-armhf-gcc10: arm-linux-gnueabihf-gcc-10 10\.\d\.\d of bullseye, [\d.]+ MiB/);
  const stamp = JSON.parse(fs.readFileSync(path.join(cache, 'toolchains', r.tree, 'imgbuild-toolchain.json'), 'utf8')) as { release: string; major: string };
  t.like(stamp, { release: 'bullseye', major: '10' });
  const second = await build('--no-wheel-cache');
  t.is(second.exitCode, 0, second.all);
  t.notRegex(second.all, /make the gcc 10 toolchain tree/);
  t.regex(second.all, /accel: native \(toolchain tree bullseye-armhf-gcc10\)/);
  const host = await build('--no-wheel-cache', '--toolchain', 'host');
  t.is(host.exitCode, 0, host.all);
  t.regex(host.all, /warning: emulated compiler: no host cross gcc 10 for arm-linux-gnueabihf/);
  const listed = await imgbuild(['--cache-dir', cache, 'cache']);
  t.regex(listed.stdout, /toolchains .*\n\s+bullseye-armhf-gcc10\n/);
  const cleared = await imgbuild(['--cache-dir', cache, 'cache', 'toolchains', '--clear']);
  t.is(cleared.exitCode, 0, cleared.all);
  t.false(fs.existsSync(path.join(cache, 'toolchains', r.tree)));
});

test('a tree that cannot be made: auto warns and builds emulated; --toolchain tree fails (exit 3) naming mmdebstrap and the archive; nothing half-made is left', async (t) => {
  const r = releases[0];
  const cache = tmpdir();
  const args = ['--cache-dir', cache, r.image, '--target', `local:${path.join(fixtures, 'cext-hello')}`, '--toolchain-mirror', 'http://127.0.0.1:9/debian'];
  const auto = await imgbuild([...args, '--out', tmpdir()]);
  t.is(auto.exitCode, 0, auto.all);
  t.regex(auto.all, /warning: no toolchain tree: mmdebstrap could not make the toolchain tree \(gcc-10-arm-linux-gnueabihf/);
  const strict = await imgbuild([...args, '--toolchain', 'tree', '--out', tmpdir()]);
  t.is(strict.exitCode, 3, strict.all);
  t.regex(strict.stderr, /mmdebstrap could not make the toolchain tree/);
  t.deepEqual(fs.readdirSync(path.join(cache, 'toolchains')).filter((e) => !e.endsWith('.log')), [], 'no tree, finished or not');
  const bad = await imgbuild([...args.slice(0, -1), 'mirror.example', '--out', tmpdir()]);
  t.is(bad.exitCode, 2, bad.all);
  t.regex(bad.stderr, /--toolchain-mirror mirror.example is not an archive URL/);
});

test('kill -9 while the tree is made: recover removes the unfinished tree; the next build makes it whole', async (t) => {
  const r = releases[0];
  const cache = tmpdir();
  const dir = path.join(cache, 'toolchains');
  const child = execa('node', [cliPath, '--cache-dir', cache, r.image, '--target', `local:${path.join(fixtures, 'cext-hello')}`, '--toolchain', 'tree', '--out', tmpdir()], { reject: false, all: true, detached: true });
  const deadline = Date.now() + 120_000;
  while (!(fs.existsSync(dir) && fs.readdirSync(dir).some((e) => e.startsWith('.tmp-'))) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 100));
  t.true(Date.now() < deadline, 'the tree was being made');
  await new Promise((res) => setTimeout(res, 1500));
  process.kill(-child.pid!, 'SIGKILL');
  await child;
  const rec = await imgbuild(['recover']);
  t.is(rec.exitCode, 0, rec.all);
  t.regex(rec.all, /done .*remove directory \S+\/toolchains\/\.tmp-\d+-bullseye-armhf-gcc10/);
  t.deepEqual(fs.readdirSync(dir).filter((e) => !e.endsWith('.log')), []);
  const again = await imgbuild(['--cache-dir', cache, r.image, '--target', `local:${path.join(fixtures, 'cext-hello')}`, '--toolchain', 'tree', '--out', tmpdir()]);
  t.is(again.exitCode, 0, again.all);
  t.true(fs.existsSync(path.join(dir, r.tree, 'imgbuild-toolchain.json')));
});
