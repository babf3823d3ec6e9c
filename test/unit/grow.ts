import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { PreconditionError, UsageError } from '../../lib/core/errors.js';
import { formatBytes } from '../../lib/core/units.js';
import { checkHostSpace, fsckVerdict, parseDumpe2fsHeader, parseSize, planGrow, sfdiskGrowArgs, sfdiskGrowInput, sfdiskRelocateArgs } from '../../lib/image-tools/grow-plan.js';
import type { ImageFile, ImagePartition } from '../../lib/host/image.js';
import { type FsType, parseSfdiskJson } from '../../lib/parse/partitions.js';

const fixture = (name: string) => fs.readFileSync(path.join('test/fixtures/tools', name), 'utf8');
const MiB = 2 ** 20;

/** An image as openImage would describe it, from captured sfdisk output and the given filesystems. */
function image(sfdiskFixture: string, fstypes: FsType[], size?: number): Pick<ImageFile, 'path' | 'size' | 'table' | 'partitions'> {
  const table = parseSfdiskJson(fixture(sfdiskFixture));
  const partitions: ImagePartition[] = table.partitions.map((p, i) => ({ ...p, fstype: fstypes[i] ?? 'unknown' }));
  const end = Math.max(...partitions.map((p) => p.start + p.size));
  return { path: '/img/x.img', size: size ?? end, table, partitions };
}

test('SIZE: +N grows by, N is the new total; K M G T are powers of 1024, fractions allowed', (t) => {
  t.deepEqual(parseSize('+512M'), { kind: 'by', bytes: 512 * MiB, text: '+512M' });
  t.deepEqual(parseSize('2G'), { kind: 'to', bytes: 2 * 1024 * MiB, text: '2G' });
  t.is(parseSize('1.5G').bytes, 1536 * MiB);
  t.is(parseSize('+64MiB').bytes, 64 * MiB);
  t.is(parseSize('+4k').bytes, 4096);
  t.is(parseSize('1T').bytes, 2 ** 40);
  t.is(parseSize('+.5M').bytes, MiB / 2);
});

test('SIZE: no unit, decimal units, signs, junk and zero are usage errors with an example', (t) => {
  for (const bad of ['512', '+512', '512MB', '-64M', '+1.5', 'abc', '', '+', '1,5G', '++1M', '+0M', '0.0G', '1e3M']) {
    const e = t.throws(() => parseSize(bad), { instanceOf: UsageError }, bad);
    t.is(e?.exitCode, 2);
    t.regex(e?.hint ?? '', /imgbuild grow IMAGE \+512M/);
  }
});

test('plan for MBR: grow the last partition (the ext4 root), keep its start, file size in whole sectors', (t) => {
  const img = image('sfdisk-mbr.json', ['vfat', 'ext4']);
  const plan = planGrow(img, parseSize('+64M'));
  t.like(plan, { partition: 2, fstype: 'ext4', start: 18432 * 512, partitionSize: 112640 * 512, fileSize: img.size, newFileSize: img.size + 64 * MiB, relocateBackupGpt: false, table: 'mbr' });
  // A fraction of a sector rounds up to a whole one.
  t.is(planGrow(img, { kind: 'by', bytes: 100, text: '+100' }).newFileSize, img.size + 512);
  // An absolute size is the new total.
  t.is(planGrow(img, parseSize('1G')).newFileSize, 1024 * MiB);
});

test('plan for GPT: the backup header moves to the new end first', (t) => {
  const table = parseSfdiskJson(fixture('sfdisk-gpt.json'));
  const img = image('sfdisk-gpt.json', ['vfat', 'ext4'], Math.max(...table.partitions.map((p) => p.start + p.size)) + 33 * 512);
  const plan = planGrow(img, parseSize('+64M'));
  t.true(plan.relocateBackupGpt);
  t.is(plan.partition, 2);
});

test('plan refuses: not larger, root not last, not ext, logical partition, MBR size limit', (t) => {
  const img = image('sfdisk-mbr.json', ['vfat', 'ext4']);
  const smaller = t.throws(() => planGrow(img, { kind: 'to', bytes: img.size, text: 'X' }), { instanceOf: PreconditionError });
  t.regex(smaller?.message ?? '', /would not grow it/);
  t.regex(smaller?.hint ?? '', /never shrinks/);

  // The last partition on disk holds swap (or FAT): name the layout and what to do.
  const swapLast = image('sfdisk-mbr.json', ['ext4', 'swap']);
  const e = t.throws(() => planGrow(swapLast, parseSize('+1G')), { instanceOf: PreconditionError });
  t.regex(e?.message ?? '', /partition 2 \(swap\) ends last .*p1 ext4 8 MiB at 1 MiB, p2 swap 55 MiB at 9 MiB/);
  t.regex(e?.hint ?? '', /growpart/);
  t.throws(() => planGrow(image('sfdisk-mbr.json', ['ext4', 'btrfs']), parseSize('+1G')), { instanceOf: PreconditionError, message: /ext2\/3\/4/ });

  // The order on disk decides, not the partition number.
  const swapped = image('sfdisk-mbr.json', ['vfat', 'ext4']);
  swapped.partitions = [{ ...swapped.partitions[1]!, number: 1 }, { ...swapped.partitions[0]!, number: 2, start: 0 }];
  t.is(planGrow(swapped, parseSize('+1M')).partition, 1);

  const logical = image('sfdisk-mbr.json', ['vfat', 'ext4']);
  logical.partitions[1]!.number = 5;
  t.throws(() => planGrow(logical, parseSize('+1G')), { instanceOf: PreconditionError, message: /logical partition inside an extended one/ });

  t.throws(() => planGrow(img, parseSize('+3T')), { instanceOf: PreconditionError, message: /MBR partition cannot be larger/ });
  t.notThrows(() => planGrow(image('sfdisk-gpt.json', ['vfat', 'ext4']), parseSize('+3T')));
});

test('host space: the whole growth must fit, and the message says the file is sparse', (t) => {
  const plan = planGrow(image('sfdisk-mbr.json', ['vfat', 'ext4']), parseSize('+64M'));
  t.notThrows(() => checkHostSpace(plan, 64 * MiB, '/var/tmp'));
  const e = t.throws(() => checkHostSpace(plan, 10 * MiB, '/var/tmp'), { instanceOf: PreconditionError });
  t.regex(e?.message ?? '', /grow by 64 MiB: 10 MiB free in \/var\/tmp/);
  t.regex(e?.hint ?? '', /sparse/);
});

test('sfdisk argv: grow partition N in place, no kernel re-read, no wipe, no lock of its own', (t) => {
  t.deepEqual(sfdiskGrowArgs('/img/x y.img', 2), ['--lock=no', '--no-reread', '--no-tell-kernel', '--wipe', 'never', '--wipe-partitions', 'never', '-N', '2', '/img/x y.img']);
  // Start empty (unchanged), size "+" (all the room there is).
  t.is(sfdiskGrowInput, ', +\n');
  t.deepEqual(sfdiskRelocateArgs('/img/x.img'), ['--lock=no', '--relocate', 'gpt-bak-std', '/img/x.img']);
});

test('e2fsck exit codes: 0 clean, 1 and 2 fixed, 4 and up failed', (t) => {
  t.is(fsckVerdict(0), 'clean');
  t.is(fsckVerdict(1), 'fixed');
  t.is(fsckVerdict(2), 'fixed');
  t.is(fsckVerdict(3), 'fixed');
  for (const code of [4, 5, 8, 12, 16, 32, 128]) t.is(fsckVerdict(code), 'failed', String(code));
});

test('dumpe2fs -h: block size and counts from captured output', (t) => {
  t.deepEqual(parseDumpe2fsHeader(fixture('dumpe2fs-h.txt')), { blockSize: 4096, blocks: 254720, freeBlocks: 110192 });
  t.throws(() => parseDumpe2fsHeader('Filesystem volume name: x\n'), { message: /Block size/ });
});

test('sizes print in binary units', (t) => {
  t.is(formatBytes(64 * MiB), '64 MiB');
  t.is(formatBytes(1536 * MiB), '1.5 GiB');
  t.is(formatBytes(100), '100 bytes');
});
