import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { clearCache, listCache } from '../../lib/host/cache-dir.js';
import { cacheChecks } from '../../lib/host/doctor.js';
import { createContext } from '../../lib/core/context.js';
import { UsageError } from '../../lib/core/errors.js';
import { holdLock } from '../../lib/host/lock.js';

function fakeCache(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-cache-'));
  fs.mkdirSync(path.join(dir, 'git', 'repo-abc', '.git'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'git', 'repo-abc', '.git', 'HEAD'), 'x'.repeat(10000));
  fs.writeFileSync(path.join(dir, 'git', 'repo-abc.lock'), '');
  fs.mkdirSync(path.join(dir, 'work', 'img-1'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'work', 'img-1', '.imgbuild.lock'), '');
  fs.mkdirSync(path.join(dir, 'samples'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'samples', 'a.img'), 'img');
  // The wheel cache is two levels deep: wheels/<key[0:2]>/<key>/, and wheels/images/ for image hashes.
  for (const key of ['ab12', 'ab34', 'cd56']) {
    fs.mkdirSync(path.join(dir, 'wheels', key.slice(0, 2), key), { recursive: true });
    fs.writeFileSync(path.join(dir, 'wheels', key.slice(0, 2), key, 'p-1.0-py3-none-any.whl'), 'w'.repeat(5000));
  }
  fs.mkdirSync(path.join(dir, 'wheels', 'images'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'wheels', 'images', '2049-12.json'), '{}');
  return dir;
}

test('the cache lists its parts with sizes', (t) => {
  const dir = fakeCache();
  const parts = listCache(dir);
  t.deepEqual(parts.map((p) => p.name), ['samples', 'git', 'pip', 'wheels', 'ccache', 'toolchains', 'work', 'vm']);
  t.true(parts.find((p) => p.name === 'wheels')!.bytes >= 15000);
  t.is(parts.find((p) => p.name === 'ccache')!.path, path.join(dir, 'ccache'));
  t.true(parts.find((p) => p.name === 'git')!.bytes >= 10000);
  t.is(parts.find((p) => p.name === 'pip')!.bytes, 0);
  t.is(parts.find((p) => p.name === 'toolchains')!.entries, undefined);
  // Trees are listed by name; their logs and unfinished trees are not.
  for (const d of ['trixie-aarch64-gcc14', '.tmp-1-bullseye-armhf-gcc10']) fs.mkdirSync(path.join(dir, 'toolchains', d), { recursive: true });
  fs.writeFileSync(path.join(dir, 'toolchains', 'trixie-aarch64-gcc14.log'), '');
  t.deepEqual(listCache(dir).find((p) => p.name === 'toolchains')!.entries, ['trixie-aarch64-gcc14']);
  fs.rmSync(dir, { recursive: true });
});

test('clearing named parts removes only those; an unknown part is a usage error', (t) => {
  const dir = fakeCache();
  const r = clearCache(dir, ['git']);
  t.deepEqual(r.skipped, []);
  t.deepEqual(fs.readdirSync(path.join(dir, 'git')), []);
  t.true(fs.existsSync(path.join(dir, 'samples', 'a.img')));
  t.throws(() => clearCache(dir, ['everything']), { instanceOf: UsageError, message: /no cache part called everything/ });
  fs.rmSync(dir, { recursive: true });
});

test('clearing skips what a running imgbuild holds (its lock), and names the holder', async (t) => {
  const dir = fakeCache();
  const lock = path.join(dir, 'work', 'img-1', '.imgbuild.lock');
  const holder = execa('flock', ['--no-fork', lock, 'sh', '-c', 'echo ready; read -r _'], { stdin: 'pipe', reject: false });
  await new Promise<void>((resolve) => holder.stdout!.once('data', () => resolve()));
  try {
    const r = clearCache(dir, ['work', 'samples']);
    t.is(r.skipped.length, 1);
    t.regex(r.skipped[0]!, /img-1 \(in use by process \d+\)/);
    t.true(fs.existsSync(path.join(dir, 'work', 'img-1')));
    t.false(fs.existsSync(path.join(dir, 'samples', 'a.img')));
  } finally {
    holder.stdin!.end();
    await holder;
  }
  t.deepEqual(clearCache(dir, ['work']).skipped, []);
  // A toolchain tree still being made by a live process is left; a dead one's is cleared.
  for (const d of [`.tmp-${process.pid}-trixie-aarch64-gcc14`, '.tmp-999999999-bullseye-armhf-gcc10']) fs.mkdirSync(path.join(dir, 'toolchains', d), { recursive: true });
  const trees = clearCache(dir, ['toolchains']);
  t.deepEqual(trees.skipped, [`${path.join(dir, 'toolchains', `.tmp-${process.pid}-trixie-aarch64-gcc14`)} (in use by process ${process.pid})`]);
  t.deepEqual(trees.removed, [path.join(dir, 'toolchains', '.tmp-999999999-bullseye-armhf-gcc10')]);
  // A tree a session compiles with (two at once: a shared lock each) is left too.
  const inUse = path.join(dir, 'toolchains', 'bookworm-armhf-gcc12');
  fs.mkdirSync(inUse, { recursive: true });
  const ctx = createContext();
  const locks = [await holdLock(ctx, path.join(inUse, '.imgbuild.lock'), 'tree', undefined, { shared: true }), await holdLock(ctx, path.join(inUse, '.imgbuild.lock'), 'tree', undefined, { shared: true })];
  try {
    t.regex(clearCache(dir, ['toolchains']).skipped.join(), /bookworm-armhf-gcc12 \(in use by process \d+\)/);
    t.true(fs.existsSync(inUse));
  } finally {
    for (const l of locks) await l.release();
  }
  t.deepEqual(clearCache(dir, ['toolchains']).removed.filter((p) => p === inUse), [inUse]);
  fs.rmSync(dir, { recursive: true });
});

test('clearing the wheel cache removes its shards and image hashes, nothing else', (t) => {
  const dir = fakeCache();
  const r = clearCache(dir, ['wheels', 'ccache']);
  t.deepEqual(r.skipped, []);
  t.deepEqual(r.removed.sort(), ['ab', 'cd', 'images'].map((n) => path.join(dir, 'wheels', n)));
  t.deepEqual(fs.readdirSync(path.join(dir, 'wheels')), []);
  t.true(fs.existsSync(path.join(dir, 'git', 'repo-abc', '.git', 'HEAD')));
  fs.rmSync(dir, { recursive: true });
});

test('doctor lists each cache part with its path and size', (t) => {
  const dir = fakeCache();
  const checks = cacheChecks(dir);
  t.deepEqual(checks.map((c) => c.name), listCache(dir).map((p) => `cache ${p.name}`));
  t.true(checks.every((c) => c.ok && c.section === 'cache'));
  t.regex(checks.find((c) => c.name === 'cache wheels')!.detail, new RegExp(`^\\d+ MiB in ${dir}/wheels: built wheels`));
  fs.rmSync(dir, { recursive: true });
});
