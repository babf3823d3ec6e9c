// Bad input and killed sessions (issue 18 §3), each answered with a clear message and its exit
// code, nothing left on the host and nothing changed in the image: a corrupt ext4 superblock that
// keeps its magic, an image on a read-only filesystem given --rw or mount, --out under /proc, a
// session started while a killed one's changes are still on the host, and a build whose
// namespace holder is killed from outside.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { copySparse, type HostContext, hostUnchanged, imgbuild, sampleSync, sha256, spawnImgbuild, tmpdir, waitForChrooted } from '../helpers/cli.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');

async function rootPartitionStart(image: string): Promise<number> {
  const table = JSON.parse((await execa('sfdisk', ['--json', image])).stdout).partitiontable as { sectorsize?: number; partitions: { start: number; type: string }[] };
  return table.partitions.at(-1)!.start * (table.sectorsize ?? 512);
}

test('a corrupt ext4 superblock that keeps its magic: exit 3 naming the partition and e2fsck, the image unchanged', async (t) => {
  const image = await copySparse(aarch64, path.join(tmpdir(), 'corrupt.img'));
  // s_log_block_size (offset 24 of the superblock at 1024) set absurdly: the magic stays, the kernel refuses it.
  const fd = fs.openSync(image, 'r+');
  fs.writeSync(fd, Buffer.from([0x40, 0, 0, 0]), 0, 4, (await rootPartitionStart(image)) + 1024 + 24);
  fs.closeSync(fd);
  const before = await sha256(image);
  const r = await imgbuild(['inspect', image]);
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, /partition 2 \(ext4\) of \S+corrupt\.img cannot be mounted: /);
  t.regex(r.stderr, /e2fsck -fn/);
  t.notRegex(r.stderr, /Command failed/);
  t.is(await sha256(image), before);
});

test('an image on a read-only filesystem: --rw and mount are exit 3 before anything changes; a throwaway layer works', async (t) => {
  const dir = tmpdir();
  const ro = tmpdir();
  await copySparse(aarch64, path.join(dir, 'ro.img'));
  await execa('mount', ['--bind', '-o', 'ro', dir, ro]);
  try {
    const image = path.join(ro, 'ro.img');
    const rw = await imgbuild(['run', image, '--rw', '--', 'true']);
    t.is(rw.exitCode, 3, rw.all);
    t.regex(rw.stderr, /ro\.img cannot be written \(it is on a read-only filesystem\): imgbuild run here writes into the image/);
    t.notRegex(rw.all, /EROFS: |at .*\.js:\d+/, 'no stack trace');
    const target = tmpdir();
    const m = await imgbuild(['mount', image, target]);
    t.is(m.exitCode, 3, m.all);
    t.regex(m.stderr, /cannot be written \(it is on a read-only filesystem\): imgbuild mount/);
    const plain = await imgbuild(['run', image, '--', 'true']);
    t.is(plain.exitCode, 0, plain.all);
  } finally {
    await execa('umount', [ro]);
  }
});

test('--out under /proc: exit 3 at once naming it (it used to spin for ever, deaf to signals)', async (t) => {
  const t0 = Date.now();
  const r = await imgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/pure-hello')}`, '--out', '/proc/imgbuild-out']);
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, /--out \/proc\/imgbuild-out is not writable: \/proc is on proc, a kernel interface that takes no files/);
  t.true(Date.now() - t0 < 30_000);
});

test('a session started while a killed one\'s changes are still on the host: exit 3 naming recover; after recover it runs', async (t) => {
  const doomed = spawnImgbuild(['run', aarch64, '--', 'sleep', '600']);
  await waitForChrooted(/sleep 600/);
  doomed.kill('SIGKILL');
  await doomed;
  const refused = await imgbuild(['run', aarch64, '--', 'true']);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.stderr, /a killed imgbuild session left changes on this host: \S+ \(imgbuild run, process \d+\)/);
  t.regex(refused.stderr, /run `imgbuild recover` first/);
  const rec = await imgbuild(['recover']);
  t.is(rec.exitCode, 0, rec.all);
  t.notRegex(rec.stdout, /FAIL/);
  const ok = await imgbuild(['run', aarch64, '--', 'true']);
  t.is(ok.exitCode, 0, ok.all);
});

test('a build whose namespace holder is killed from outside: the error says so, not "out of memory"', async (t) => {
  const build = spawnImgbuild([aarch64, '--target', `local:${path.resolve('test/fixtures/py/sleeps')},name=sleeps`, '--out', tmpdir()]);
  await waitForChrooted(/build-wheel\.py/, 120_000);
  // The holder: PID 1 of the session's namespaces, running the command server's shell loop.
  const holders = (await execa('pgrep', ['-f', 'while IFS= read -r c; do o=\\$\\(eval'], { reject: false })).stdout.split('\n').filter(Boolean);
  t.true(holders.length > 0, 'the holder was found');
  for (const pid of holders) process.kill(Number(pid), 'SIGKILL');
  const r = await build;
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /killed with the whole session: its namespace holder process was killed from outside imgbuild/);
  t.notRegex(r.stderr, /out of memory/);
  const rec = await imgbuild(['recover']);
  t.is(rec.exitCode, 0, rec.all);
});

test('a GPT image cut short, and one with both GPT headers damaged: exit 3 saying which, not "no Linux root filesystem"', async (t) => {
  const cut = await copySparse(sampleSync('aarch64', 'gpt'), path.join(tmpdir(), 'cut.img'));
  const full = fs.statSync(cut).size;
  fs.truncateSync(cut, 700 * 2 ** 20);
  const r = await imgbuild(['inspect', cut]);
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, new RegExp(`cut\\.img is truncated: its GPT disk is ${full} bytes but the file has ${700 * 2 ** 20}`));
  const damaged = await copySparse(sampleSync('aarch64', 'gpt'), path.join(tmpdir(), 'damaged.img'));
  const fd = fs.openSync(damaged, 'r+');
  for (const at of [512, full - 512]) fs.writeSync(fd, Buffer.from('XXXXXXXX'), 0, 8, at);
  fs.closeSync(fd);
  const d = await imgbuild(['inspect', damaged]);
  t.is(d.exitCode, 3, d.all);
  t.regex(d.stderr, /the GPT partition table of \S+damaged\.img cannot be read \(only its protective MBR can\)/);
});
