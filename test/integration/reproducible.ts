// Reproducible wheels (issue 18): two builds of the same inputs, into different workspaces and
// without the wheel cache, give byte-identical wheels. Two real projects from Debian's upstream
// tarballs: MarkupSafe (a setuptools C extension, compiled by the host's cross gcc) and tomli
// (flit_core, pure Python, from trixie's source). The manifest records the epoch, and it is the
// source's own time: the newest entry of the tarball.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execa } from 'execa';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, sha256, tmpdir } from '../helpers/cli.js';
import { upstream } from '../helpers/upstream.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');
const armhf = sampleSync('armhf');

interface Built {
  file: string;
  sha256: string;
  sourceDateEpoch: number;
}

async function buildTwice(t: ExecutionContext<HostContext>, image: string, target: string, extra: string[] = []): Promise<[Built, Built]> {
  const runs: Built[] = [];
  for (let i = 0; i < 2; i++) {
    const out = tmpdir();
    const r = await imgbuild([image, '--target', target, '--workspace', tmpdir(), '--out', out, ...extra]);
    t.is(r.exitCode, 0, r.all);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Built[] };
    const w = m.wheels[0]!;
    t.is(await sha256(path.join(out, w.file)), w.sha256);
    runs.push(w);
  }
  return runs as [Built, Built];
}

async function newestTarEntry(tarball: string): Promise<number> {
  const r = await execa('tar', ['-tv', '--full-time', '-f', tarball], { env: { TZ: 'UTC', LC_ALL: 'C' } });
  const times = [...r.stdout.matchAll(/ (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) /g)].map((m) => Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) / 1000);
  return Math.max(...times);
}

test('MarkupSafe (C extension, accel cross) built twice into two workspaces: byte-identical wheels; SOURCE_DATE_EPOCH is the tarball\'s newest entry', async (t) => {
  const src = await upstream('markupsafe');
  const [a, b] = await buildTwice(t, aarch64, `local:${src.tarball}`);
  t.regex(a.file, /^MarkupSafe-[\d.]+-cp311-cp311-linux_aarch64\.whl$/);
  t.is(a.sha256, b.sha256, 'the two wheels differ');
  t.is(a.sourceDateEpoch, await newestTarEntry(src.tarball!));
});

test('tomli (flit_core, pure Python) built twice for armhf, offline: byte-identical wheels', async (t) => {
  const src = await upstream('python-tomli/trixie');
  const [a, b] = await buildTwice(t, armhf, `local:${src.tarball},apt=flit`, ['--offline']);
  t.regex(a.file, /^tomli-[\d.]+-py3-none-any\.whl$/);
  t.is(a.sha256, b.sha256, 'the two wheels differ');
  t.is(a.sourceDateEpoch, b.sourceDateEpoch);
});
