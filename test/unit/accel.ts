// Deciding whether the host's cross gcc can stand in for the image's: on fake host and image trees.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { accelIdentity, decideAccel, hostCrossVersions, imageGcc } from '../../lib/accel.js';
import { PreconditionError, UsageError } from '../../lib/errors.js';
import { defaultMemoryLimit } from '../../lib/build.js';
import { memoryLimit } from '../../bin/commands/build.js';

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

const hostWith = (...versions: string[]) =>
  tree(Object.fromEntries(versions.flatMap((v) => [
    [`usr/lib/gcc-cross/aarch64-linux-gnu/${v}/cc1`, ''],
    [`usr/lib/gcc-cross/aarch64-linux-gnu/${v}/cc1plus`, ''],
    [`usr/bin/aarch64-linux-gnu-gcc-${v}`, ''],
    [`usr/bin/aarch64-linux-gnu-g++-${v}`, ''],
  ])));

const imageWith = (dir: string, triple = 'aarch64-linux-gnu', extra: Record<string, string> = {}) =>
  tree({ [`usr/lib/gcc/${triple}/${dir}/cc1`]: '', [`usr/lib/gcc/${triple}/${dir}/cc1plus`]: '', ...extra });

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
