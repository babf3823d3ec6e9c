import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { clearCache, listCache } from '../../lib/cache.js';
import { UsageError } from '../../lib/errors.js';

function fakeCache(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-cache-'));
  fs.mkdirSync(path.join(dir, 'git', 'repo-abc', '.git'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'git', 'repo-abc', '.git', 'HEAD'), 'x'.repeat(10000));
  fs.writeFileSync(path.join(dir, 'git', 'repo-abc.lock'), '');
  fs.mkdirSync(path.join(dir, 'work', 'img-1'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'work', 'img-1', '.imgbuild.lock'), '');
  fs.mkdirSync(path.join(dir, 'samples'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'samples', 'a.img'), 'img');
  return dir;
}

test('the cache lists its parts with sizes', (t) => {
  const dir = fakeCache();
  const parts = listCache(dir);
  t.deepEqual(parts.map((p) => p.name), ['samples', 'git', 'pip', 'work', 'vm']);
  t.true(parts.find((p) => p.name === 'git')!.bytes >= 10000);
  t.is(parts.find((p) => p.name === 'pip')!.bytes, 0);
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
  fs.rmSync(dir, { recursive: true });
});
