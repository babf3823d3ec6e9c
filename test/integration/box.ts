// Build code does not reach the host through the files imgbuild takes back: a wheel swapped for a
// link to a host file after it was built, a wheels/ directory swapped for a link to a host
// directory; and a kept build tree is root's alone (it may hold setuid files the build made).
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { readZip } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, sha256, tmpdir } from '../helpers/cli.js';

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
