// `imgbuild grow` on copies of the sample images: real loop devices, real e2fsck and resize2fs.
// Every test checks that the host looks exactly the same afterwards.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { parseDumpe2fsHeader } from '../../lib/image-tools/grow-plan.js';
import { copySparse, fsckRoot, type HostContext, hostUnchanged, imgbuild, sampleSync, sha256, spawnImgbuild, tmpdir, waitForChrooted } from '../helpers/cli.js';

// These tests are about building: a wheel cache hit would skip the build they mean to exercise.
process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const MiB = 2 ** 20;
const samples = { mbr: sampleSync('aarch64'), gpt: sampleSync('aarch64', 'gpt') };

interface Root {
  start: number;
  size: number;
  lastlba?: number;
}

/** The last partition, in sectors, as sfdisk reads it. */
async function rootOf(image: string): Promise<Root> {
  const table = JSON.parse((await execa('sfdisk', ['--json', image])).stdout).partitiontable;
  const last = table.partitions.at(-1);
  return { start: last.start, size: last.size, ...(table.lastlba ? { lastlba: table.lastlba } : {}) };
}

/** dumpe2fs -h of the root filesystem through a read-only offset loop, detached again. */
async function fsOf(image: string) {
  const root = await rootOf(image);
  const loop = (await execa('losetup', ['--find', '--show', '--read-only', '--offset', String(root.start * 512), '--sizelimit', String(root.size * 512), image])).stdout.trim();
  try {
    return parseDumpe2fsHeader((await execa('dumpe2fs', ['-h', loop])).stdout);
  } finally {
    await execa('losetup', ['--detach', loop]);
  }
}

/** A private sparse copy of a sample image in its own directory; `done` removes the directory. */
async function copyOf(table: 'mbr' | 'gpt') {
  const dir = tmpdir('imgbuild-grow-');
  const image = await copySparse(samples[table], path.join(dir, `${table}.img`));
  // Never recursive: a mount point left mounted by a failed test must not be emptied.
  const done = () => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) fs.rmdirSync(path.join(dir, e.name));
      else fs.unlinkSync(path.join(dir, e.name));
    }
    fs.rmdirSync(dir);
  };
  return { dir, image, done };
}

for (const table of ['mbr', 'gpt'] as const) {
  test(`grow ${table.toUpperCase()} by 64M: file, root partition and ext4 grow; fsck passes; inspect still works`, async (t) => {
    const { image, done } = await copyOf(table);
    try {
      const sizeBefore = fs.statSync(image).size;
      const rootBefore = await rootOf(image);
      const fsBefore = await fsOf(image);

      const r = await imgbuild(['grow', image, '+64M', '--json']);
      t.is(r.exitCode, 0, r.all);
      const result = JSON.parse(r.stdout);

      t.is(fs.statSync(image).size, sizeBefore + 64 * MiB);
      const root = await rootOf(image);
      t.is(root.start, rootBefore.start, 'the root partition starts where it did');
      const sectors = (sizeBefore + 64 * MiB) / 512;
      if (table === 'gpt') {
        // The backup GPT moved to the new end, and the root reaches the last usable sector.
        t.is(root.lastlba, sectors - 34);
        t.is(root.start + root.size - 1, root.lastlba ?? -1);
      } else {
        t.is(root.start + root.size, sectors);
      }
      t.true(root.size - rootBefore.size >= (64 * MiB) / 512);
      t.is(result.partitionSize.after, root.size * 512);
      t.is(result.file.after, sizeBefore + 64 * MiB);

      t.is(await fsckRoot(image), 0);
      const fsAfter = await fsOf(image);
      t.is(fsAfter.blockSize, fsBefore.blockSize);
      t.is(fsAfter.blocks, Math.floor((root.size * 512) / fsAfter.blockSize), 'the filesystem fills the partition');
      t.true((fsAfter.freeBlocks - fsBefore.freeBlocks) * fsAfter.blockSize > 60 * MiB, 'free space grew');
      t.deepEqual(result.filesystem.after, { blocks: fsAfter.blocks, freeBlocks: fsAfter.freeBlocks });

      const i = await imgbuild(['inspect', image, '--json']);
      t.is(i.exitCode, 0, i.all);
      t.is(JSON.parse(i.stdout).table.type, table);
      if (table === 'gpt') t.regex((await execa('sfdisk', ['--verify', image], { all: true })).all ?? '', /No errors detected/);

      // The plain output says what changed.
      const again = await imgbuild(['grow', image, '+1M']);
      t.is(again.exitCode, 0, again.all);
      t.regex(again.stdout, /partition 2 \(ext4, (MBR|GPT)\): .* -> .* \(\+1 MiB\), start unchanged/);
      t.regex(again.stdout, /sparse/);
    } finally {
      done();
    }
  });
}

test('grow refuses while imgbuild mount holds the image: exit 3, the image byte-identical', async (t) => {
  const { dir, image, done } = await copyOf('mbr');
  const mnt = path.join(dir, 'mnt');
  fs.mkdirSync(mnt);
  try {
    const m = await imgbuild(['mount', '--ro', image, mnt]);
    t.is(m.exitCode, 0, m.all);
    try {
      const before = await sha256(image);
      const r = await imgbuild(['grow', image, '+64M']);
      t.is(r.exitCode, 3, r.all);
      t.regex(r.stderr, /is attached as \/dev\/loop\d+; it cannot grow while in use/);
      t.regex(r.stderr, /hint: .*imgbuild umount/);
      t.is(await sha256(image), before);
    } finally {
      const u = await imgbuild(['umount', mnt]);
      t.is(u.exitCode, 0, u.all);
    }
  } finally {
    done();
  }
});

test('grow refuses while a session holds the image lock, and names it', async (t) => {
  const { image, done } = await copyOf('mbr');
  try {
    const session = spawnImgbuild(['run', image, '--', 'sleep', '600']);
    await waitForChrooted(/sleep 600/);
    const before = await sha256(image);
    const r = await imgbuild(['grow', image, '+64M']);
    session.kill('SIGTERM');
    await session;
    t.is(r.exitCode, 3, r.all);
    t.regex(r.stderr, /in use by another imgbuild session \(process \d+: imgbuild run/);
    t.is(await sha256(image), before);
  } finally {
    done();
  }
});

test('bad input: SIZE is a usage error (2); missing image, smaller size, no ext4 at the end are preconditions (3)', async (t) => {
  const { dir, image, done } = await copyOf('mbr');
  try {
    const before = await sha256(image);
    for (const size of ['64', '+64MB', 'big', '+0M']) {
      const r = await imgbuild(['grow', image, size]);
      t.is(r.exitCode, 2, `${size}: ${r.all}`);
      t.regex(r.stderr, /hint: for example: imgbuild grow IMAGE \+512M/, size);
    }
    const noSize = await imgbuild(['grow', image]);
    t.is(noSize.exitCode, 2, noSize.all);

    const missing = await imgbuild(['grow', path.join(dir, 'missing.img'), '+64M']);
    t.is(missing.exitCode, 3, missing.all);
    t.regex(missing.stderr, /image not found/);
    t.false(fs.existsSync(path.join(dir, 'missing.img')), 'the lock did not create the image');

    const smaller = await imgbuild(['grow', image, '512M']);
    t.is(smaller.exitCode, 3, smaller.all);
    t.regex(smaller.stderr, /would not grow it/);
    t.is(await sha256(image), before);

    // FAT at the end of the disk: nothing imgbuild can grow.
    const fat = path.join(dir, 'fat.img');
    fs.writeFileSync(fat, '');
    fs.truncateSync(fat, 16 * MiB);
    await execa('sfdisk', ['--quiet', fat], { input: 'label: dos\nstart=2048, type=c\n' });
    await execa('mkfs.vfat', ['--offset', '2048', fat]);
    const r = await imgbuild(['grow', fat, '+16M']);
    t.is(r.exitCode, 3, r.all);
    t.regex(r.stderr, /partition 1 \(vfat\) ends last .* \(p1 vfat 15 MiB at 1 MiB\)/);
    t.is(fs.statSync(fat).size, 16 * MiB);
  } finally {
    done();
  }
});

test('a filesystem e2fsck cannot repair safely stops grow before anything grows', async (t) => {
  const { image, done } = await copyOf('mbr');
  try {
    const root = await rootOf(image);
    const loop = (await execa('losetup', ['--find', '--show', '--offset', String(root.start * 512), '--sizelimit', String(root.size * 512), image])).stdout.trim();
    try {
      await execa('debugfs', ['-w', '-R', 'clri <2>', loop]);
    } finally {
      await execa('losetup', ['--detach', loop]);
    }
    const size = fs.statSync(image).size;
    const r = await imgbuild(['grow', image, '+64M']);
    t.is(r.exitCode, 1, r.all);
    t.regex(r.stderr, /e2fsck -f -p \(before growing anything\) left errors .*nothing was grown/);
    t.regex(r.stderr, /hint: repair the filesystem by hand.*losetup --find --show --offset/);
    t.is(fs.statSync(image).size, size);
    t.deepEqual(await rootOf(image), root);
  } finally {
    done();
  }
});

test('kill -9 during grow: recover detaches its loop; the next grow finishes the filesystem', async (t) => {
  const { image, done } = await copyOf('mbr');
  try {
    const size = fs.statSync(image).size;
    const killed = await imgbuild(['grow', image, '+64M'], { env: { IMGBUILD_FAULT: 'grow:resize:kill9' } });
    t.is(killed.signal, 'SIGKILL', killed.all);
    // Killed after the file and the partition grew, with the filesystem's loop attached.
    t.is(fs.statSync(image).size, size + 64 * MiB);
    const loops = (await execa('losetup', ['--list', '--noheadings', '--output', 'BACK-FILE'])).stdout;
    t.true(loops.includes(image), 'the loop is still there before recover');
    const lock = await execa('flock', ['--exclusive', '--nonblock', image, 'true'], { reject: false });
    t.is(lock.exitCode, 0, 'the image lock died with imgbuild');

    const rec = await imgbuild(['recover']);
    t.is(rec.exitCode, 0, rec.all);
    t.regex(rec.stdout, /done .*detach loop \/dev\/loop\d+ of .*mbr\.img/);

    const r = await imgbuild(['grow', image, '+1M']);
    t.is(r.exitCode, 0, r.all);
    const root = await rootOf(image);
    const after = await fsOf(image);
    t.is(after.blocks, Math.floor((root.size * 512) / after.blockSize));
    t.is(await fsckRoot(image), 0);
  } finally {
    done();
  }
});
