// deflateStored: a wheel written uncompressed in the chroot, deflated natively on the host. Python's
// zipfile (the one that reads wheels on the board) checks the result member by member.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { needs } from '../helpers/tools.js';
import { ZipError, readZip } from '../../lib/parse/zip.js';
import { deflateStored, dosTime, normalMode, rewriteWheel } from '../../lib/wheel/deflate.js';
import { newestInTarListing, newestInTree } from '../../lib/build/source-epoch.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-zip-'));
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }));
const withPython = needs('python3');
let serial = 0;

/** A wheel-like archive written by Python's zipfile with every member stored, as the chroot writes it. */
async function storedArchive(compression = 'ZIP_STORED'): Promise<string> {
  const file = path.join(work, `${++serial}.whl`);
  const script = `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w', zipfile.${compression}) as z:
    z.comment = b'archive comment'
    d = zipfile.ZipInfo('pkg/', date_time=(2020, 1, 2, 3, 4, 6)); d.external_attr = (0o40755 << 16) | 0x10
    z.writestr(d, b'')
    i = zipfile.ZipInfo('pkg/__init__.py', date_time=(2021, 5, 6, 7, 8, 10)); i.external_attr = 0o100644 << 16; i.compress_type = z.compression
    i.comment = b'member comment'; i.extra = b'\\xfe\\xca\\x04\\x00abcd'
    z.writestr(i, b'VALUE = 1\\n' * 2000)
    x = zipfile.ZipInfo('pkg/tool', date_time=(2022, 1, 1, 0, 0, 0)); x.external_attr = 0o100755 << 16; x.compress_type = z.compression
    z.writestr(x, b'#!/bin/sh\\necho hi\\n')
    z.writestr('pkg/empty', b'')
    z.writestr('pkg/_native.so', bytes(range(256)) * 4096)
    z.writestr('pkg/\\u00fcnicode.txt', 'gr\\u00fc\\u00dfe'.encode())
`;
  await execa('python3', ['-c', script, file]);
  return file;
}

/** Every member's name, time, attributes, comment, extra, CRC, method and contents, as Python reads them. */
async function describe(file: string): Promise<{ members: Record<string, unknown>[]; comment: string; test: string | null }> {
  const script = `
import hashlib, json, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    print(json.dumps({'test': z.testzip(), 'comment': z.comment.decode(), 'members': [
        {'name': i.filename, 'date': list(i.date_time), 'attr': i.external_attr, 'comment': i.comment.decode(),
         'extra': i.extra.hex(), 'crc': i.CRC, 'size': i.file_size, 'method': i.compress_type,
         'sha': hashlib.sha256(z.read(i)).hexdigest()} for i in z.infolist()]}))
`;
  return JSON.parse((await execa('python3', ['-c', script, file])).stdout);
}

withPython('stored members come out deflated; everything else Python can see is the same', async (t) => {
  const file = await storedArchive();
  const before = await describe(file);
  const original = fs.readFileSync(file);
  const r = await deflateStored(file, `${file}.new`);
  t.is(r.deflated, 4, 'the four non-empty files; the directory and the empty file stay stored');
  t.is(r.bytesAfter, fs.statSync(`${file}.new`).size);
  t.true(r.bytesAfter < r.bytesBefore / 5, `${r.bytesBefore} -> ${r.bytesAfter}`);
  t.true(fs.readFileSync(file).equals(original), 'the original is not touched');
  const after = await describe(`${file}.new`);
  t.is(after.test, null, 'zipfile.testzip finds no bad member');
  t.is(after.comment, 'archive comment');
  const strip = (m: Record<string, unknown>) => ({ ...m, method: undefined });
  t.deepEqual(after.members.map(strip), before.members.map(strip));
  t.deepEqual(after.members.map((m) => [m['name'], m['method']]), before.members.map((m) => [m['name'], (m['size'] as number) > 0 ? 8 : 0]));
});

withPython('an archive with nothing stored is left as it is (nothing written)', async (t) => {
  const file = await storedArchive('ZIP_DEFLATED');
  const bytes = fs.readFileSync(file);
  const ino = fs.statSync(file).ino;
  const r = await deflateStored(file, `${file}.new`);
  t.is(r.deflated, 0);
  t.false(fs.existsSync(`${file}.new`), 'nothing written');
  t.is(fs.statSync(file).ino, ino);
  t.true(fs.readFileSync(file).equals(bytes));
});

withPython('a member that fails its CRC: an error naming it, the partial output removed', async (t) => {
  const file = await storedArchive();
  const e = readZip(file).find((x) => x.name === 'pkg/_native.so')!;
  const bytes = fs.readFileSync(file);
  const dataAt = e.headerOffset + 30 + bytes.readUInt16LE(e.headerOffset + 26) + bytes.readUInt16LE(e.headerOffset + 28);
  bytes.writeUInt8(bytes.readUInt8(dataAt + 1000) ^ 0xff, dataAt + 1000);
  fs.writeFileSync(file, bytes);
  const error = await t.throwsAsync(deflateStored(file, `${file}.new`), { instanceOf: ZipError });
  t.regex(error.message, /pkg\/_native\.so fails its CRC check/);
  t.true(fs.readFileSync(file).equals(bytes));
  t.false(fs.existsSync(`${file}.new`), 'the partial output is removed');
});

// Reproducible wheels: every entry's time set to SOURCE_DATE_EPOCH, every Unix mode normalised.
withPython('with an epoch, every entry carries its time and a normal mode; contents, names and order stay; two different archives of the same files come out byte-identical', async (t) => {
  const epoch = Date.UTC(2024, 2, 3, 4, 5, 6) / 1000;
  const a = await storedArchive('ZIP_DEFLATED');
  const b = await storedArchive('ZIP_DEFLATED');
  // The same members, written at another time with other modes (a setuid bit, group write).
  await execa('python3', ['-c', `
import sys, zipfile
src, dst = sys.argv[1:3]
with zipfile.ZipFile(src) as s, zipfile.ZipFile(dst + '.tmp', 'w', zipfile.ZIP_DEFLATED) as d:
    d.comment = s.comment
    for i in s.infolist():
        j = zipfile.ZipInfo(i.filename, date_time=(2025, 12, 31, 23, 59, 58)); j.compress_type = i.compress_type
        j.external_attr = i.external_attr | ((0o4020 << 16) if not i.is_dir() else 0); j.comment = i.comment; j.extra = i.extra
        d.writestr(j, s.read(i))
`, b, b]);
  fs.renameSync(`${b}.tmp`, b);
  const before = await describe(a);
  await rewriteWheel(a, `${a}.r`, { deflate: false, epoch });
  await rewriteWheel(b, `${b}.r`, { deflate: false, epoch });
  t.true(fs.readFileSync(`${a}.r`).equals(fs.readFileSync(`${b}.r`)), 'byte-identical');
  const after = await describe(`${a}.r`);
  t.is(after.test, null);
  t.deepEqual(after.members.map((m) => m.name), before.members.map((m) => m.name));
  t.deepEqual(after.members.map((m) => m.sha), before.members.map((m) => m.sha));
  for (const m of after.members) t.deepEqual(m.date, [2024, 3, 3, 4, 5, 6], String(m.name));
  const modes = Object.fromEntries(after.members.map((m) => [m.name, ((m.attr as number) >>> 16).toString(8)]));
  t.like(modes, { 'pkg/': '40755', 'pkg/__init__.py': '100644', 'pkg/tool': '100755' });
});

test('MS-DOS times and normal modes', (t) => {
  t.deepEqual(dosTime(315532800), { time: 0, date: (0 << 9) | (1 << 5) | 1 });
  t.deepEqual(dosTime(0), dosTime(315532800), 'before 1980: 1980');
  t.is(normalMode(0o104775), 0o100755);
  t.is(normalMode(0o100664), 0o100644);
  t.is(normalMode(0o042777), 0o040755);
  t.is(normalMode(0o120777), 0o120777, 'a link keeps its mode');
});

test('SOURCE_DATE_EPOCH from a tar listing (UTC) and a tree\'s newest file', (t) => {
  const listing = '-rw-r--r-- u/g 10 2023-01-18 12:34:56 pkg/a.py\ndrwxr-xr-x u/g 0 2024-06-01 00:00:02 pkg/\n';
  t.is(newestInTarListing(listing), Date.UTC(2024, 5, 1, 0, 0, 2) / 1000);
  t.is(newestInTarListing('nothing'), undefined);
  const dir = fs.mkdtempSync(path.join(work, 'tree-'));
  fs.mkdirSync(path.join(dir, 'src'));
  fs.mkdirSync(path.join(dir, 'build'));
  fs.writeFileSync(path.join(dir, 'src', 'a.py'), '');
  fs.writeFileSync(path.join(dir, 'build', 'new.o'), '');
  fs.utimesSync(path.join(dir, 'src', 'a.py'), 1_600_000_000, 1_600_000_000);
  fs.utimesSync(path.join(dir, 'build', 'new.o'), 1_700_000_000, 1_700_000_000);
  t.is(newestInTree(dir, ['build']), 1_600_000_000, 'build output does not count');
});
