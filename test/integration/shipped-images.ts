// Images as they ship: .img.xz (Raspberry Pi OS), .zip with one .img (PYNQ), .img.zst, decompressed
// once into the cache (sparse, under the archive's sha256), then used read-only; the archive is
// never changed; --rw says which copy changes; damaged or ambiguous archives stop with exit 3.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, sha256, tmpdir } from '../helpers/cli.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const sample = sampleSync('aarch64');

// A cache of its own per test, so the first use always decompresses.
function cacheArgs(): string[] {
  return ['--cache-dir', tmpdir()];
}

test('an .img.xz is decompressed once into the cache, sparse, with progress; used read-only; the second use reads nothing', async (t) => {
  const dir = tmpdir();
  const xz = path.join(dir, 'raspios-like.img.xz');
  await execa('sh', ['-c', `xz -0 -T2 -c "${sample}" > "${xz}"`]);
  const before = await sha256(xz);
  const cache = cacheArgs();
  const first = await imgbuild([...cache, '--verbose', 'run', xz, '--', 'cat', '/etc/hostname']);
  t.is(first.exitCode, 0, first.all);
  t.is(first.stdout.trim(), 'imgbuild-sample');
  t.regex(first.stderr, /decompress raspios-like\.img\.xz \(xz\) into the cache: done/);
  t.regex(first.stderr, /\d+(\.\d+)? [KMG]iB written, \d+(\.\d+)? [KMG]iB\/s/, 'progress: bytes written and rate');
  const images = fs.readdirSync(path.join(cache[1]!, 'images')).filter((f) => f.endsWith('.img'));
  t.deepEqual(images.map((f) => f.replace(/^[0-9a-f]{16}-/, '')), ['raspios-like.img']);
  const copy = path.join(cache[1]!, 'images', images[0]!);
  t.is(fs.statSync(copy).size, fs.statSync(sample).size);
  t.true(fs.statSync(copy).blocks * 512 < fs.statSync(copy).size * 0.8, 'the copy is sparse');
  t.is(await sha256(copy), await sha256(sample), 'the same bytes as the image that was compressed');
  const second = await imgbuild([...cache, 'run', xz, '--', 'true']);
  t.is(second.exitCode, 0, second.all);
  t.notRegex(second.stderr, /decompress/, 'the archive is not read again');
  t.is(await sha256(xz), before, 'the archive is never changed');
});

test('a .zip with one .img inside (PYNQ style), and --rw on a .img.zst names the decompressed copy it changes', async (t) => {
  const dir = tmpdir();
  fs.mkdirSync(path.join(dir, 'pynq'));
  fs.copyFileSync(sample, path.join(dir, 'pynq', 'pynq_z2.img'));
  fs.writeFileSync(path.join(dir, 'pynq', 'README.txt'), 'a board image\n');
  await execa('zip', ['-q', '-1', '-r', 'pynq.zip', 'pynq'], { cwd: dir });
  fs.rmSync(path.join(dir, 'pynq'), { recursive: true });
  const cache = cacheArgs();
  const zip = await imgbuild([...cache, 'inspect', path.join(dir, 'pynq.zip'), '--json']);
  t.is(zip.exitCode, 0, zip.all);
  t.is((JSON.parse(zip.stdout) as { arch: string }).arch, 'aarch64');

  const zst = path.join(dir, 'board.img.zst');
  await execa('zstd', ['-q', '-1', sample, '-o', zst]);
  const rw = await imgbuild([...cache, 'run', '--rw', zst, '--', 'sh', '-c', 'echo changed > /etc/imgbuild-test']);
  t.is(rw.exitCode, 0, rw.all);
  const copy = /changes go into its decompressed copy (\S+), not into the archive/.exec(rw.stderr)?.[1];
  t.truthy(copy, rw.stderr);
  const read = await imgbuild([...cache, 'run', zst, '--', 'cat', '/etc/imgbuild-test']);
  t.is(read.stdout.trim(), 'changed', 'the change is in the copy the next run uses');
});

test('a damaged archive, a zip with two images and one with none: exit 3 naming the file, nothing left in the cache', async (t) => {
  const dir = tmpdir();
  const cache = cacheArgs();
  const xz = path.join(dir, 'cut.img.xz');
  await execa('sh', ['-c', `head -c 300000000 "${sample}" | xz -0 -c | head -c 200000 > "${xz}"`]);
  const cut = await imgbuild([...cache, 'inspect', xz]);
  t.is(cut.exitCode, 3, cut.all);
  t.regex(cut.stderr, /cut\.img\.xz could not be decompressed \(xz, xz exit 1\)/);
  t.regex(cut.stderr, /damaged or incomplete: fetch it again/);
  fs.writeFileSync(path.join(dir, 'a.img'), 'x');
  fs.writeFileSync(path.join(dir, 'b.img'), 'y');
  await execa('zip', ['-q', 'two.zip', 'a.img', 'b.img'], { cwd: dir });
  const two = await imgbuild([...cache, 'inspect', path.join(dir, 'two.zip')]);
  t.is(two.exitCode, 3, two.all);
  t.regex(two.stderr, /two\.zip holds 2 \.img files \(a\.img, b\.img\)/);
  await execa('zip', ['-q', 'none.zip', 'a.img'], { cwd: dir });
  fs.renameSync(path.join(dir, 'a.img'), path.join(dir, 'a.txt'));
  await execa('zip', ['-q', 'text.zip', 'a.txt'], { cwd: dir });
  const none = await imgbuild([...cache, 'inspect', path.join(dir, 'text.zip')]);
  t.is(none.exitCode, 3, none.all);
  t.regex(none.stderr, /text\.zip holds no \.img file \(it has a\.txt\)/);
  t.deepEqual(fs.readdirSync(path.join(cache[1]!, 'images')).filter((f) => !f.startsWith('.memo')), [], 'no partial copy is left');
});
