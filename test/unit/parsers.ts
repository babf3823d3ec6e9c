import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { entryMatches, findUsableEntry, parseBinfmtEntry, registrationLine } from '../../lib/host/binfmt.js';
import { archiveFormat, oneImage, rawName } from '../../lib/host/unpack-image.js';
import { PreconditionError } from '../../lib/core/errors.js';
import { archTable, binfmtMagic, parseArch } from '../../lib/core/arch.js';
import { elfArch, readElfHeader } from '../../lib/parse/elf.js';
import { parseKpartxAdd } from '../../lib/host/dm.js';
import { devString, parseLosetupJson } from '../../lib/host/loop.js';
import { isAtOrBelow, mountsAtOrBelow, parseMountinfo } from '../../lib/parse/mountinfo.js';
import { detectFilesystem, parseSfdiskJson } from '../../lib/parse/partitions.js';
import { glibcVersion, parseOsRelease } from '../../lib/session/inspect.js';
import { pythonAbi, wheelTag } from '../../lib/wheel/names.js';
import { bootMountpoint } from '../../lib/session/boot.js';

const fixtures = path.resolve('test/fixtures/tools');
const fixture = (name: string) => fs.readFileSync(path.join(fixtures, name));

test('sfdisk --json of an MBR image: offsets in bytes, types, bootable flag', (t) => {
  const table = parseSfdiskJson(fixture('sfdisk-mbr.json').toString());
  t.is(table.type, 'mbr');
  t.deepEqual(
    table.partitions.map((p) => [p.number, p.start, p.size, p.type, p.bootable]),
    [
      [1, 2048 * 512, 16384 * 512, 'c', true],
      [2, 18432 * 512, 112640 * 512, '83', false],
    ],
  );
  t.regex(table.id, /^[0-9a-f]{8}$/);
});

test('sfdisk --json of a GPT image: names, partuuids, type GUIDs', (t) => {
  const table = parseSfdiskJson(fixture('sfdisk-gpt.json').toString());
  t.is(table.type, 'gpt');
  t.is(table.partitions.length, 2);
  t.is(table.partitions[1]!.name, 'rootfs');
  t.is(table.partitions[1]!.type, '0fc63daf-8483-4772-8e3d-3d69d8477de4');
  t.regex(table.partitions[0]!.partuuid ?? '', /^[0-9a-f-]{36}$/);
});

test('MBR extended containers are not partitions that hold filesystems', (t) => {
  const json = JSON.stringify({ partitiontable: { label: 'dos', id: '0x1', sectorsize: 512, partitions: [{ node: 'x1', start: 1, size: 2, type: 'c' }, { node: 'x2', start: 3, size: 9, type: '5' }, { node: 'x5', start: 4, size: 2, type: '83' }] } });
  t.deepEqual(parseSfdiskJson(json).partitions.map((p) => p.number), [1, 5]);
});

test('losetup --json: trims the padded maj:min column and reads the flags', (t) => {
  const [loop] = parseLosetupJson(fixture('losetup.json').toString());
  t.is(loop!.backDev, '254:0');
  t.is(loop!.backIno, 2146609);
  t.is(loop!.offset, 9437184);
  t.true(loop!.ro);
  t.false(loop!.autoclear);
  t.deepEqual(parseLosetupJson(''), []);
});

test('devString decodes st_dev the way losetup prints it', (t) => {
  t.is(devString(65024), '254:0');
  t.is(devString(0x803), '8:3');
  t.is(devString((259 << 8) | 5 | (0x12 << 12 << 8)), `259:${5 | (0x12 << 8)}`);
});

test('ext4 and vfat superblocks are recognised with labels', (t) => {
  t.like(detectFilesystem(fixture('ext4-head.bin')), { fstype: 'ext4' });
  t.like(detectFilesystem(fixture('vfat-head.bin')), { fstype: 'vfat', label: 'BOOT' });
  t.is(detectFilesystem(Buffer.alloc(70000)).fstype, 'unknown');
});

test('mountinfo: escaped paths, and at-or-below compares on component boundaries', (t) => {
  const text = '36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n37 35 0:5 / /a rw - tmpfs none rw\n38 35 0:5 / /ab rw - tmpfs none rw\n39 37 0:5 / /a/b rw - tmpfs none rw\n';
  const m = parseMountinfo(text);
  t.is(m[0]!.target, '/mnt/with space');
  t.is(m[0]!.fstype, 'ext3');
  t.deepEqual(mountsAtOrBelow(m, '/a').map((e) => e.target), ['/a', '/a/b']);
  t.true(isAtOrBelow('/a', '/a/'));
  t.false(isAtOrBelow('/ab', '/a'));
  t.true(parseMountinfo(fixture('mountinfo.txt').toString()).some((e) => e.target === '/'));
});

test('binfmt entries: parse, match the arch header, and registration strings have the F flag', (t) => {
  const arm = parseBinfmtEntry('qemu-arm', fixture('binfmt-qemu-arm.txt').toString())!;
  t.true(arm.enabled);
  t.is(arm.flags, 'F');
  t.is(arm.interpreter, '/usr/bin/qemu-arm-static');
  t.true(entryMatches(arm, binfmtMagic(archTable.armhf).magic));
  t.false(entryMatches(arm, binfmtMagic(archTable.aarch64).magic));
  const line = registrationLine('imgbuild-aarch64-x', 'aarch64', '/usr/bin/qemu-aarch64-static');
  // Debian's own registration for the same arch uses the same magic and mask.
  const debian = fixture('binfmt-debian-aarch64.conf').toString().split(':');
  const ours = line.split(':');
  t.is(ours[4], debian[4]);
  t.is(ours[5], debian[5]);
  t.is(ours.at(-1), 'F');
});

test('binfmt: a host entry with the F flag is reused, another imgbuild run\'s never (it goes when that run ends)', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-binfmt-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const qemu = process.execPath; // any file that exists stands for the interpreter
  fs.writeFileSync(path.join(dir, 'status'), 'enabled\n');
  const entry = fixture('binfmt-qemu-arm.txt').toString().replace('/usr/bin/qemu-arm-static', qemu);
  fs.writeFileSync(path.join(dir, 'imgbuild-arm-abc123'), entry);
  t.regex(findUsableEntry(dir, 'armhf').reason ?? '', /no binfmt_misc entry for armhf/);
  fs.writeFileSync(path.join(dir, 'qemu-arm'), entry);
  t.is(findUsableEntry(dir, 'armhf').entry?.name, 'qemu-arm');
  // Only a session's own name (imgbuild-QEMUARCH-SESSION6) is skipped; the host's may begin the same way.
  fs.rmSync(path.join(dir, 'qemu-arm'));
  fs.writeFileSync(path.join(dir, 'imgbuild-test-qemu-arm'), entry);
  t.is(findUsableEntry(dir, 'armhf').entry?.name, 'imgbuild-test-qemu-arm');
});

test('ELF headers name the userland arch, armhf by its hard-float flag', (t) => {
  const header = (cls: number, machine: number, flags: number) => {
    const b = Buffer.alloc(64);
    b.writeUInt32BE(0x7f454c46, 0);
    b[4] = cls;
    b[5] = 1;
    b.writeUInt16LE(3, 16);
    b.writeUInt16LE(machine, 18);
    b.writeUInt32LE(flags, cls === 2 ? 48 : 36);
    return b;
  };
  t.is(elfArch(readElfHeader(header(2, 183, 0))!), 'aarch64');
  t.is(elfArch(readElfHeader(header(1, 40, 0x05000400))!), 'armhf');
  t.is(elfArch(readElfHeader(header(1, 40, 0x05000200))!), 'armel');
  t.is(elfArch(readElfHeader(header(2, 62, 0))!), 'x86_64');
  t.is(elfArch(readElfHeader(header(2, 2, 0))!), undefined);
  t.is(readElfHeader(Buffer.from('#!/bin/sh\n'.padEnd(64))), undefined);
  t.is(parseArch('arm64'), 'aarch64');
  t.is(parseArch('armv7l'), 'armhf');
});

test('kpartx -a -v lines give map names and the parent loop', (t) => {
  t.deepEqual(parseKpartxAdd(fixture('kpartx-add.txt').toString()), [
    { name: 'loop0p1', dev: '254:0', parent: '7:0', offset: 2048 },
    { name: 'loop0p2', dev: '254:1', parent: '7:0', offset: 18432 },
  ]);
});

test('wheel tags follow CPython ABI rules', (t) => {
  t.is(wheelTag('3.11', 'aarch64'), 'cp311-cp311-linux_aarch64');
  t.is(wheelTag('3.7', 'armhf'), 'cp37-cp37m-linux_armv7l');
  t.is(pythonAbi('3.8'), 'cp38');
});

test('glibc version from libc.so.6 bytes; os-release parsing', (t) => {
  t.is(glibcVersion(Buffer.from('\0GNU C Library (Debian GLIBC 2.36-9+deb12u4) stable release version 2.36.\n')), '2.36');
  t.is(glibcVersion(Buffer.from('GLIBC_2.17\0GLIBC_2.28\0GLIBC_2.4\0')), '2.28');
  t.deepEqual(parseOsRelease('PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\n'), { PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)', ID: 'debian' });
});

test('the boot mount point comes from the image fstab', (t) => {
  const boot = { number: 1, start: 0, size: 1, type: 'c', bootable: true, fstype: 'vfat' as const, label: 'BOOT', partuuid: undefined };
  t.is(bootMountpoint('PARTUUID=abcd1234-01  /boot/firmware  vfat  defaults 0 2\n', boot, 'abcd1234'), '/boot/firmware');
  t.is(bootMountpoint('/dev/mmcblk0p1 /boot vfat defaults 0 2\n', boot, 'x'), '/boot');
  t.is(bootMountpoint('', boot, 'x'), '/boot');
});

test('images as they ship: the compression by magic, the one .img of a zip, the cache name', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-archive-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const write = (name: string, bytes: number[]) => {
    fs.writeFileSync(path.join(dir, name), Buffer.from([...bytes, 0, 0, 0, 0, 0, 0, 0, 0]));
    return path.join(dir, name);
  };
  t.is(archiveFormat(write('a.img.xz', [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])), 'xz');
  t.is(archiveFormat(write('a.img.gz', [0x1f, 0x8b])), 'gzip');
  t.is(archiveFormat(write('a.img.zst', [0x28, 0xb5, 0x2f, 0xfd])), 'zstd');
  t.is(archiveFormat(write('a.zip', [0x50, 0x4b, 0x03, 0x04])), 'zip');
  t.is(archiveFormat(write('a.img', [0xeb, 0x3c, 0x90])), undefined, 'a raw image (a boot sector) is not an archive, whatever its name');
  t.is(oneImage('pynq/\npynq/README.txt\npynq/pynq_z2_v3.0.1.img\n', 'p.zip'), 'pynq/pynq_z2_v3.0.1.img');
  t.throws(() => oneImage('a.img\nb.img\n', 'two.zip'), { instanceOf: PreconditionError, message: 'two.zip holds 2 .img files (a.img, b.img)' });
  t.throws(() => oneImage('README.txt\n', 'none.zip'), { instanceOf: PreconditionError, message: /none\.zip holds no \.img file \(it has README\.txt\)/ });
  t.is(rawName('/dl/2024-11-19-raspios-bookworm-arm64-lite.img.xz', 'ab'.repeat(32)), `${'ab'.repeat(8)}-2024-11-19-raspios-bookworm-arm64-lite.img`);
  t.is(rawName('/dl/pynq z2.zip', 'cd'.repeat(32)), `${'cd'.repeat(8)}-pynq_z2.img`);
});
