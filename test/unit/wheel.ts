import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { type Arch, archTable } from '../../lib/core/arch.js';
import { armCpuArch, runsOnArmv6 } from '../../lib/parse/arm-attributes.js';
import { elfArch, readElfDynamic, readElfHeader } from '../../lib/parse/elf.js';
import { UsageError } from '../../lib/core/errors.js';
import { compareVersions, manylinuxGlibc, parseWheelName, tagProblems } from '../../lib/wheel/names.js';
import { findLibrary, libraryDirs, wheelElves } from '../../lib/wheel/libraries.js';
import { verifyWheel } from '../../lib/wheel/verify.js';
import { modulesOf } from '../../lib/wheel/modules.js';
import { ZipError, isSafeEntryName, readEntry, readEntryHead, readZip } from '../../lib/parse/zip.js';
import { needs } from '../helpers/tools.js';

const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-wheel-'));
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }));

const withPython = needs('python3');
const withZip = needs('zip');
const withGcc = needs('gcc', 'readelf', 'python3');

let serial = 0;
const tmp = (name: string) => path.join(work, `${++serial}-${name}`);

/** A zip written by Python's zipfile, names exactly as given ('../x' and '/x' included). */
async function makeZip(name: string, members: { name: string; data: Buffer | string; stored?: boolean }[]): Promise<string> {
  const dest = tmp(name);
  const spec = members.map((m) => {
    const file = tmp('member');
    fs.writeFileSync(file, m.data);
    return { name: m.name, path: file, stored: m.stored ?? false };
  });
  const script = [
    'import json, sys, zipfile',
    "with zipfile.ZipFile(sys.argv[1], 'w') as z:",
    '    for m in json.loads(sys.argv[2]):',
    "        info = zipfile.ZipInfo(m['name'])",
    "        info.compress_type = zipfile.ZIP_STORED if m['stored'] else zipfile.ZIP_DEFLATED",
    "        z.writestr(info, open(m['path'], 'rb').read())",
  ].join('\n');
  await execa('python3', ['-c', script, dest, JSON.stringify(spec)]);
  return dest;
}

/** A bare 64-byte ELF header: enough for machine and arch. */
function elfHeader(o: { cls: 1 | 2; machine: number; flags?: number; bigEndian?: boolean }): Buffer {
  const b = Buffer.alloc(64);
  b.writeUInt32BE(0x7f454c46, 0);
  b[4] = o.cls;
  b[5] = o.bigEndian ? 2 : 1;
  b[6] = 1;
  const le = !o.bigEndian;
  le ? b.writeUInt16LE(3, 16) : b.writeUInt16BE(3, 16);
  le ? b.writeUInt16LE(o.machine, 18) : b.writeUInt16BE(o.machine, 18);
  const flagsAt = o.cls === 2 ? 48 : 36;
  le ? b.writeUInt32LE(o.flags ?? 0, flagsAt) : b.writeUInt32BE(o.flags ?? 0, flagsAt);
  return b;
}

interface SynthOptions {
  cls: 1 | 2;
  bigEndian?: boolean;
  machine: number;
  flags?: number;
  needed: string[];
  soname?: string;
  rpath?: string;
  runpath?: string;
  /** No program headers: the reader must use .dynamic and its sh_link. */
  sectionsOnly?: boolean;
}

/** A small but well-formed shared object: header, program or section headers, .dynamic, .dynstr. */
function synthElf(o: SynthOptions): Buffer {
  const wide = o.cls === 2;
  const le = !o.bigEndian;
  const base = 0x400000;
  const strings = ['', ...o.needed, ...[o.soname, o.rpath, o.runpath].filter((s): s is string => s !== undefined)];
  const strtab = Buffer.from(strings.map((s) => `${s}\0`).join(''));
  const at = (s: string) => strings.slice(0, strings.indexOf(s)).reduce((n, x) => n + x.length + 1, 0);
  const tags: [number, number][] = [
    ...o.needed.map((n): [number, number] => [1, at(n)]),
    ...(o.soname ? [[14, at(o.soname)] as [number, number]] : []),
    ...(o.rpath ? [[15, at(o.rpath)] as [number, number]] : []),
    ...(o.runpath ? [[29, at(o.runpath)] as [number, number]] : []),
  ];
  const ehsize = wide ? 64 : 52;
  const phent = wide ? 56 : 32;
  const shent = wide ? 64 : 40;
  const dynent = wide ? 16 : 8;
  const phoff = ehsize;
  const phnum = o.sectionsOnly ? 0 : 2;
  const dynOff = phoff + phnum * phent;
  const dynSize = (tags.length + 3) * dynent;
  const strOff = dynOff + dynSize;
  const shoff = strOff + strtab.length;
  const shnum = o.sectionsOnly ? 3 : 0;
  const total = shoff + shnum * shent;
  tags.push([5, o.sectionsOnly ? 0xdead : base + strOff], [10, strtab.length], [0, 0]);

  const b = Buffer.alloc(total);
  elfHeader({ cls: o.cls, machine: o.machine, flags: o.flags ?? 0, bigEndian: o.bigEndian ?? false }).copy(b, 0, 0, ehsize);
  const u16 = (v: number, p: number) => (le ? b.writeUInt16LE(v, p) : b.writeUInt16BE(v, p));
  const u32 = (v: number, p: number) => (le ? b.writeUInt32LE(v, p) : b.writeUInt32BE(v, p));
  const word = (v: number, p: number) => (wide ? (le ? b.writeBigUInt64LE(BigInt(v), p) : b.writeBigUInt64BE(BigInt(v), p)) : u32(v, p));
  word(o.sectionsOnly ? 0 : phoff, wide ? 32 : 28);
  word(o.sectionsOnly ? shoff : 0, wide ? 40 : 32);
  u16(ehsize, wide ? 52 : 40);
  u16(phent, wide ? 54 : 42);
  u16(phnum, wide ? 56 : 44);
  u16(shent, wide ? 58 : 46);
  u16(shnum, wide ? 60 : 48);
  const phdr = (i: number, type: number, offset: number, size: number) => {
    const p = phoff + i * phent;
    u32(type, p);
    word(offset, p + (wide ? 8 : 4));
    word(base + offset, p + (wide ? 16 : 8));
    word(size, p + (wide ? 32 : 16));
    word(size, p + (wide ? 40 : 20));
  };
  if (!o.sectionsOnly) {
    phdr(0, 1, 0, total);
    phdr(1, 2, dynOff, dynSize);
  }
  tags.forEach(([tag, val], i) => {
    word(tag, dynOff + i * dynent);
    word(val, dynOff + i * dynent + (wide ? 8 : 4));
  });
  strtab.copy(b, strOff);
  const shdr = (i: number, type: number, offset: number, size: number, link: number) => {
    const s = shoff + i * shent;
    u32(type, s + 4);
    word(offset, s + (wide ? 24 : 16));
    word(size, s + (wide ? 32 : 20));
    u32(link, s + (wide ? 40 : 24));
  };
  if (o.sectionsOnly) {
    shdr(1, 3, strOff, strtab.length, 0);
    shdr(2, 6, dynOff, dynSize, 1);
  }
  return b;
}

/** Deterministic pseudo-random bytes, so a failing fuzz case can be replayed. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x;
    return ((x ^ (x >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** An image root holding only the given files (inner path -> contents). */
function fakeRoot(files: Record<string, Buffer | string>): string {
  const root = tmp('root');
  for (const [inner, data] of Object.entries(files)) {
    fs.mkdirSync(path.join(root, path.dirname(inner)), { recursive: true });
    fs.writeFileSync(path.join(root, inner), data);
  }
  fs.mkdirSync(root, { recursive: true });
  return root;
}

// --- ELF dynamic sections -------------------------------------------------------------------

test('readElfDynamic reads ELF32 and ELF64, both byte orders, via program headers', (t) => {
  for (const [cls, bigEndian, machine] of [[2, false, 183], [1, false, 40], [2, true, 43], [1, true, 8]] as const) {
    const b = synthElf({ cls, bigEndian, machine, needed: ['libm.so.6', 'libc.so.6'], soname: 'libx.so.1', rpath: '$ORIGIN:/opt/x', runpath: '$ORIGIN/../lib' });
    t.deepEqual(readElfDynamic(b), { needed: ['libm.so.6', 'libc.so.6'], soname: 'libx.so.1', rpath: ['$ORIGIN', '/opt/x'], runpath: ['$ORIGIN/../lib'], verneed: [], verdef: [] }, `class ${cls} ${bigEndian ? 'BE' : 'LE'}`);
  }
});

test('readElfDynamic falls back to .dynamic and its sh_link string table without program headers', (t) => {
  const b = synthElf({ cls: 1, bigEndian: true, machine: 8, needed: ['libz.so.1'], sectionsOnly: true });
  t.deepEqual(readElfDynamic(b), { needed: ['libz.so.1'], rpath: [], runpath: [], verneed: [], verdef: [] });
  t.deepEqual(readElfDynamic(synthElf({ cls: 2, machine: 62, needed: [], sectionsOnly: true })), { needed: [], rpath: [], runpath: [], verneed: [], verdef: [] });
});

test('readElfDynamic: undefined for non-ELF, static ELF and every truncation, never a throw', (t) => {
  t.is(readElfDynamic(Buffer.from('#!/bin/sh\necho hello\n'.padEnd(200))), undefined);
  t.is(readElfDynamic(Buffer.alloc(0)), undefined);
  // A static executable: a header with neither program nor section headers.
  t.is(readElfDynamic(elfHeader({ cls: 2, machine: 183 })), undefined);
  for (const o of [{ cls: 2 as const, machine: 183 }, { cls: 1 as const, machine: 40, bigEndian: true }, { cls: 2 as const, machine: 62, sectionsOnly: true }]) {
    const whole = synthElf({ ...o, needed: ['liba.so', 'libb.so'], rpath: '$ORIGIN' });
    for (let n = 0; n < whole.length; n++) t.notThrows(() => readElfDynamic(whole.subarray(0, n)));
  }
});

test('readElfDynamic survives hostile headers and random damage', (t) => {
  const hostile = synthElf({ cls: 2, machine: 183, needed: ['libc.so.6'] });
  hostile.writeUInt16LE(0xffff, 56); // e_phnum
  hostile.writeBigUInt64LE(0xffffffffffffff00n, 32); // e_phoff
  t.is(readElfDynamic(hostile), undefined);
  const huge = synthElf({ cls: 2, machine: 183, needed: ['libc.so.6'] });
  huge.writeBigUInt64LE(0xfffffffffffffff0n, 64 + 56 + 32); // PT_DYNAMIC p_filesz
  t.notThrows(() => readElfDynamic(huge));

  const random = prng(427);
  const byte = () => Math.floor(random() * 256);
  for (let i = 0; i < 3000; i++) {
    const b = synthElf({ cls: i % 2 ? 1 : 2, bigEndian: i % 3 === 0, machine: 40, needed: ['libc.so.6', 'libm.so.6'], soname: 'x', rpath: 'a:b' });
    for (let k = 0; k < 1 + (i % 8); k++) b[Math.floor(random() * b.length)] = byte();
    t.notThrows(() => readElfDynamic(b), `case ${i}`);
  }
  for (let i = 0; i < 500; i++) {
    const b = Buffer.from(Array.from({ length: 64 + Math.floor(random() * 512) }, byte));
    b.writeUInt32BE(0x7f454c46, 0);
    b[4] = 1 + (i % 2);
    t.notThrows(() => readElfDynamic(b), `garbage ${i}`);
  }
});

// --- wheel names and tags -------------------------------------------------------------------

test('parseWheelName splits PEP 427 names and their compressed tag sets', (t) => {
  t.deepEqual(parseWheelName('dist/numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl'), {
    file: 'dist/numpy-1.26.4-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl',
    distribution: 'numpy',
    version: '1.26.4',
    python: ['cp311'],
    abi: ['cp311'],
    platform: ['manylinux_2_17_aarch64', 'manylinux2014_aarch64'],
  });
  t.like(parseWheelName('six-1.16.0-1build2-py2.py3-none-any.whl'), { build: '1build2', python: ['py2', 'py3'], abi: ['none'], platform: ['any'] });
  for (const bad of ['torch-2.1.0.tar.gz', 'x-1.0-build-py3-none-any.whl', 'x-1.0-py3-none.whl', 'x-1.0-py3..py2-none-any.whl']) {
    const error = t.throws(() => parseWheelName(`/out/${bad}`), { instanceOf: UsageError });
    t.true(error?.message.includes(`/out/${bad}`));
  }
});

test('tagProblems accepts what pip on the image would install', (t) => {
  const ok = (file: string, python: string, arch: Arch) => t.deepEqual(tagProblems(parseWheelName(file), { python, arch }), [], file);
  ok('a-1-cp311-cp311-linux_aarch64.whl', '3.11', 'aarch64');
  ok('a-1-cp311-cp311-manylinux2014_aarch64.whl', '3.11', 'aarch64');
  ok('a-1-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.musllinux_1_1_aarch64.whl', '3.11', 'aarch64');
  ok('a-1-cp37-cp37m-linux_armv7l.whl', '3.7', 'armhf');
  ok('a-1-cp38-abi3-manylinux2014_aarch64.whl', '3.11', 'aarch64');
  ok('a-1-py3-none-any.whl', '3.11', 'armhf');
  ok('a-1-py2.py3-none-any.whl', '3.7', 'armel');
  ok('a-1-py310-none-any.whl', '3.11', 'aarch64');
  ok('a-1-cp311-none-linux_x86_64.whl', '3.11', 'x86_64');
});

test('tagProblems names the wheel, what it has and what the image needs', (t) => {
  const problems = (file: string, python: string, arch: Arch) => tagProblems(parseWheelName(file), { python, arch });
  t.deepEqual(problems('a-1-cp311-cp311-musllinux_1_1_aarch64.whl', '3.11', 'aarch64'), [
    'a-1-cp311-cp311-musllinux_1_1_aarch64.whl is built for musl libc (musllinux_1_1_aarch64); the image uses glibc and needs linux_aarch64, manylinux*_aarch64 or any',
  ]);
  t.deepEqual(problems('a-1-cp311-cp311-linux_armv7l.whl', '3.11', 'aarch64'), [
    'a-1-cp311-cp311-linux_armv7l.whl is for platform linux_armv7l; the image needs linux_aarch64, manylinux*_aarch64 or any',
  ]);
  t.deepEqual(problems('a-1-cp311-cp311-manylinux2014_aarch64.whl', '3.11', 'armhf'), [
    'a-1-cp311-cp311-manylinux2014_aarch64.whl is for platform manylinux2014_aarch64; the image needs linux_armv7l, manylinux*_armv7l or any',
  ]);
  t.deepEqual(problems('a-1-cp37-cp37-linux_armv7l.whl', '3.7', 'armhf'), ["a-1-cp37-cp37-linux_armv7l.whl has ABI tag cp37; the image's Python 3.7 needs cp37m, abi3 or none"]);
  t.deepEqual(problems('a-1-cp310-cp310-linux_aarch64.whl', '3.11', 'aarch64'), [
    "a-1-cp310-cp310-linux_aarch64.whl has ABI tag cp310; the image's Python 3.11 needs cp311, abi3 or none",
  ]);
  t.deepEqual(problems('a-1-cp312-abi3-linux_aarch64.whl', '3.11', 'aarch64'), [
    "a-1-cp312-abi3-linux_aarch64.whl has python tag cp312; the image's Python 3.11 needs cp32 to cp311 for abi3",
  ]);
  t.deepEqual(problems('a-1-py312-none-any.whl', '3.11', 'aarch64'), ["a-1-py312-none-any.whl has python tag py312; the image's Python 3.11 needs cp311, py3 or py311 for ABI none"]);
  // Wrong platform and wrong ABI are both reported.
  t.is(problems('a-1-cp39-cp39-win_amd64.whl', '3.11', 'x86_64').length, 2);
});

// --- ZIP reading ----------------------------------------------------------------------------

withPython('readZip lists members; readEntry returns stored and deflated data, CRC-checked', async (t) => {
  const big = Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 7) % 251));
  const zip = await makeZip('a.zip', [
    { name: 'pkg/', data: '' },
    { name: 'pkg/__init__.py', data: 'print("hi")\n'.repeat(50) },
    { name: 'pkg/data.bin', data: big, stored: true },
    { name: 'pkg/data.z', data: big },
  ]);
  const entries = readZip(zip);
  t.deepEqual(entries.map((e) => [e.name, e.method]), [['pkg/', 8], ['pkg/__init__.py', 8], ['pkg/data.bin', 0], ['pkg/data.z', 8]]);
  t.is(readEntry(zip, entries[1]!).toString(), 'print("hi")\n'.repeat(50));
  t.true(readEntry(zip, entries[2]!).equals(big));
  t.true(readEntry(zip, entries[3]!).equals(big));
  t.true(readEntryHead(zip, entries[3]!, 64).equals(big.subarray(0, 64)));
  t.true(readEntryHead(zip, entries[2]!, 64).equals(big.subarray(0, 64)));
  t.is(readEntryHead(zip, entries[1]!, 10_000).length, 600);
});

withPython('readZip and readEntry: garbage, truncation and damage give ZipError or data, never anything else', async (t) => {
  const zip = await makeZip('b.zip', [
    { name: 'a.txt', data: 'hello '.repeat(40) },
    { name: 'b.so', data: synthElf({ cls: 2, machine: 183, needed: ['libc.so.6'] }), stored: true },
  ]);
  const whole = fs.readFileSync(zip);
  const attempt = (bytes: Buffer, label: string) => {
    const file = tmp('damaged.zip');
    fs.writeFileSync(file, bytes);
    try {
      for (const e of readZip(file)) {
        try {
          readEntry(file, e);
        } catch (error) {
          t.true(error instanceof ZipError, `${label} entry: ${String(error)}`);
        }
      }
    } catch (error) {
      t.true(error instanceof ZipError, `${label}: ${String(error)}`);
    }
    fs.rmSync(file);
  };
  for (let n = 0; n < whole.length; n++) attempt(whole.subarray(0, n), `truncated to ${n}`);
  for (let i = 0; i < whole.length; i++) {
    const b = Buffer.from(whole);
    b[i] = b[i]! ^ 0xff;
    attempt(b, `byte ${i} flipped`);
  }
  const random = prng(8);
  attempt(Buffer.from(Array.from({ length: 4096 }, () => Math.floor(random() * 256))), 'random bytes');
  const garbage = tmp('garbage.zip');
  fs.writeFileSync(garbage, 'not a zip at all');
  t.throws(() => readZip(garbage), { instanceOf: ZipError, message: /no end-of-central-directory/ });
});

withPython('a central directory pointing past the file, or saturated ZIP64 fields, is refused', async (t) => {
  const whole = fs.readFileSync(await makeZip('c.zip', [{ name: 'a', data: 'x' }]));
  const eocd = whole.lastIndexOf(Buffer.from([0x50, 0x4b, 0x05, 0x06]));
  const patched = (offset: number, value: number) => {
    const b = Buffer.from(whole);
    b.writeUInt32LE(value, eocd + offset);
    const file = tmp('patched.zip');
    fs.writeFileSync(file, b);
    return file;
  };
  t.throws(() => readZip(patched(16, 0x7ffffff0)), { instanceOf: ZipError, message: /outside the file/ });
  t.throws(() => readZip(patched(16, 0xffffffff)), { instanceOf: ZipError, message: /ZIP64/ });
});

withZip('ZIP64 and encrypted archives from Info-ZIP are refused with a clear error', async (t) => {
  const dir = tmp('zipsrc');
  fs.mkdirSync(dir);
  fs.writeFileSync(path.join(dir, 'a.txt'), 'secret');
  const z64 = path.join(dir, 'z64.zip');
  const enc = path.join(dir, 'enc.zip');
  await execa('zip', ['-q', '-fz', z64, 'a.txt'], { cwd: dir });
  await execa('zip', ['-q', '-P', 'pw', enc, 'a.txt'], { cwd: dir });
  t.throws(() => readZip(z64), { instanceOf: ZipError, message: /ZIP64/ });
  t.throws(() => readZip(enc), { instanceOf: ZipError, message: /a\.txt is encrypted/ });
});

withPython('absolute and .. member names are listed but never extracted', async (t) => {
  const zip = await makeZip('evil-1.0-py3-none-any.whl', [
    { name: '../escape.so', data: elfHeader({ cls: 2, machine: 62 }) },
    { name: '/abs.so', data: 'x' },
    { name: 'ok/..hidden', data: 'x' },
  ]);
  const entries = readZip(zip);
  t.deepEqual(entries.map((e) => [e.name, isSafeEntryName(e.name)]), [['../escape.so', false], ['/abs.so', false], ['ok/..hidden', true]]);
  t.throws(() => readEntry(zip, entries[0]!), { instanceOf: ZipError, message: /refusing to extract/ });
  t.false(isSafeEntryName('a\\..\\b'));
  t.false(isSafeEntryName('C:/x'));
  t.deepEqual(wheelElves(zip), []);
  const report = verifyWheel(zip, { rootHost: fakeRoot({}), arch: 'x86_64', python: '3.11' });
  t.deepEqual(report.problems, [`${zip} has a member with an unsafe path: "../escape.so"`, `${zip} has a member with an unsafe path: "/abs.so"`]);
});

// --- ELF members of a wheel -----------------------------------------------------------------

withPython('wheelElves finds ELF members by their magic, with machine, class and arch', async (t) => {
  const zip = await makeZip('m-1.0-cp311-cp311-linux_aarch64.whl', [
    { name: 'm/a64.so', data: synthElf({ cls: 2, machine: 183, needed: ['libc.so.6'] }) },
    { name: 'm/armhf.so', data: elfHeader({ cls: 1, machine: 40, flags: 0x05000400 }), stored: true },
    { name: 'm/be.so', data: elfHeader({ cls: 2, machine: 183, bigEndian: true }) },
    { name: 'm/not-elf.so', data: 'just text'.repeat(20) },
    { name: 'm/bad-class.so', data: Buffer.concat([Buffer.from([0x7f, 0x45, 0x4c, 0x46, 9]), Buffer.alloc(60)]) },
  ]);
  t.deepEqual(wheelElves(zip), [
    { member: 'm/a64.so', machine: 183, class: 2, littleEndian: true, arch: 'aarch64', dynamic: { needed: ['libc.so.6'], rpath: [], runpath: [], verneed: [], verdef: [] } },
    { member: 'm/armhf.so', machine: 40, class: 1, littleEndian: true, arch: 'armhf' },
    { member: 'm/be.so', machine: 183, class: 2, littleEndian: false },
  ]);
  const report = verifyWheel(zip, { rootHost: fakeRoot({ '/lib/aarch64-linux-gnu/libc.so.6': elfHeader({ cls: 2, machine: 183 }) }), arch: 'aarch64', python: '3.11' });
  t.deepEqual(report.problems, ['m/armhf.so is for arm (armhf), the image is aarch64', 'm/be.so is for aarch64 (64-bit big-endian), the image is aarch64']);
  t.deepEqual(report.unresolved, []);
});

// --- the image's library directories ---------------------------------------------------------

test('libraryDirs reads ld.so.conf and its includes inside the root, then the defaults', (t) => {
  const outside = tmp('host-ld.conf');
  fs.writeFileSync(outside, '/host-secret\n');
  const root = fakeRoot({
    '/etc/ld.so.conf': 'include /etc/ld.so.conf.d/*.conf\n# a comment\n/opt/custom/lib/\n',
    '/etc/ld.so.conf.d/b.conf': '/usr/local/lib\nhwcap 0 nosegneg\nrelative/dir\n',
    '/etc/ld.so.conf.d/a.conf': '/opt/a  # trailing comment\n',
    '/etc/ld.so.conf.d/z.conf.disabled': '/not-included\n',
  });
  fs.symlinkSync(outside, path.join(root, 'etc/ld.so.conf.d/evil-abs.conf'));
  fs.symlinkSync(`../../../../../../../../..${outside}`, path.join(root, 'etc/ld.so.conf.d/evil-rel.conf'));
  fs.symlinkSync('/etc/ld.so.conf', path.join(root, 'etc/ld.so.conf.d/loop.conf'));
  t.deepEqual(libraryDirs(root, 'aarch64'), ['/opt/a', '/usr/local/lib', '/opt/custom/lib', '/lib/aarch64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib64', '/usr/lib64', '/lib', '/usr/lib']);
  t.deepEqual(libraryDirs(fakeRoot({}), 'armhf'), ['/lib/arm-linux-gnueabihf', '/usr/lib/arm-linux-gnueabihf', '/lib', '/usr/lib']);
});

test('findLibrary skips a library of the wrong architecture and never leaves the root', (t) => {
  const x86 = elfHeader({ cls: 2, machine: 62 });
  const outside = tmp('host-lib.so');
  fs.writeFileSync(outside, x86);
  const root = fakeRoot({
    '/usr/lib/x86_64-linux-gnu/libfoo.so.1': elfHeader({ cls: 2, machine: 183 }),
    '/usr/lib/libfoo.so.1': x86,
    '/usr/lib/x86_64-linux-gnu/libbar.so.1': elfHeader({ cls: 2, machine: 183 }),
    '/usr/lib/libtext.so.1': 'INPUT(-lfoo)\n',
  });
  fs.symlinkSync(outside, path.join(root, 'usr/lib/libhost.so.1'));
  const dirs = libraryDirs(root, 'x86_64');
  t.is(findLibrary(root, dirs, 'libfoo.so.1', 'x86_64'), '/usr/lib/libfoo.so.1');
  t.is(findLibrary(root, dirs, 'libbar.so.1', 'x86_64'), undefined);
  t.is(findLibrary(root, dirs, 'libbar.so.1', 'aarch64'), '/usr/lib/x86_64-linux-gnu/libbar.so.1');
  t.is(findLibrary(root, dirs, 'libtext.so.1', 'x86_64'), undefined);
  t.is(findLibrary(root, dirs, 'libhost.so.1', 'x86_64'), undefined);
  // armhf and armel share e_machine; the float ABI flag tells them apart.
  const armRoot = fakeRoot({ '/lib/libsoft.so': elfHeader({ cls: 1, machine: 40, flags: 0x05000200 }), '/lib/libhard.so': elfHeader({ cls: 1, machine: 40, flags: 0x05000400 }) });
  t.is(findLibrary(armRoot, ['/lib'], 'libsoft.so', 'armhf'), undefined);
  t.is(findLibrary(armRoot, ['/lib'], 'libhard.so', 'armhf'), '/lib/libhard.so');
  t.is(findLibrary(armRoot, ['/lib'], 'libsoft.so', 'armel'), '/lib/libsoft.so');
});

// --- end to end with real shared objects ------------------------------------------------------

interface Built {
  dir: string;
  arch: Arch;
  /** libtiny.so.1: SONAME libtiny.so.1. */
  tiny: Buffer;
  /** The extension: NEEDED libtiny.so.1 and libc.so.6, RUNPATH or RPATH $ORIGIN/lib. */
  ext: Buffer;
}

let built: Promise<Built> | undefined;
function buildWithGcc(): Promise<Built> {
  built ??= (async () => {
    const dir = tmp('gcc');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'tiny.c'), 'int tiny(void) { return 42; }\n');
    fs.writeFileSync(path.join(dir, 'ext.c'), '#include <stdio.h>\nint tiny(void);\nint ext(void) { return puts("ext") + tiny(); }\n');
    await execa('gcc', ['-shared', '-fPIC', '-Wl,-soname,libtiny.so.1', '-o', 'libtiny.so.1', 'tiny.c'], { cwd: dir });
    fs.symlinkSync('libtiny.so.1', path.join(dir, 'libtiny.so'));
    await execa('gcc', ['-shared', '-fPIC', '-o', 'ext.so', 'ext.c', '-L.', '-ltiny', '-Wl,-rpath,$ORIGIN/lib'], { cwd: dir });
    const ext = fs.readFileSync(path.join(dir, 'ext.so'));
    const arch = elfArch(readElfHeader(ext)!);
    if (!arch) throw new Error('gcc made an ELF of an architecture imgbuild does not know');
    return { dir, arch, tiny: fs.readFileSync(path.join(dir, 'libtiny.so.1')), ext };
  })();
  return built;
}

withGcc('readElfDynamic agrees with readelf -d on objects gcc built', async (t) => {
  const { dir, ext, tiny } = await buildWithGcc();
  const dyn = readElfDynamic(ext)!;
  const readelf = (await execa('readelf', ['-d', path.join(dir, 'ext.so')])).stdout;
  t.deepEqual(dyn.needed, [...readelf.matchAll(/Shared library: \[(.+)\]/g)].map((m) => m[1]));
  t.true(dyn.needed.includes('libtiny.so.1') && dyn.needed.includes('libc.so.6'));
  t.deepEqual([...dyn.rpath, ...dyn.runpath], ['$ORIGIN/lib']);
  t.is(readElfDynamic(tiny)!.soname, 'libtiny.so.1');
  for (let n = 0; n < ext.length; n += 13) t.notThrows(() => readElfDynamic(ext.subarray(0, n)));
});

withGcc('verifyWheel: a shipped library, a provided one and a missing one', async (t) => {
  const { arch, tiny, ext } = await buildWithGcc();
  const { triplet, wheelMachine } = archTable[arch];
  const image = fakeRoot({
    [`/lib/${triplet}/libc.so.6`]: tiny,
    // The right name but the wrong machine does not count.
    '/usr/lib/libtiny.so.1': elfHeader({ cls: 2, machine: arch === 'aarch64' ? 62 : 183 }),
  });
  const o = { rootHost: image, arch, python: '3.11' };
  const tag = `cp311-cp311-linux_${wheelMachine}`;

  const shipped = await makeZip(`demo-1.0-${tag}.whl`, [
    { name: 'demo/__init__.py', data: 'from ._ext import *\n' },
    { name: 'demo/_ext.so', data: ext },
    { name: 'demo/lib/libtiny.so.1', data: tiny, stored: true },
  ]);
  const report = verifyWheel(shipped, o);
  t.deepEqual(report.problems, []);
  t.deepEqual(report.unresolved, []);
  t.deepEqual(report.elves.map((e) => [e.member, e.arch]), [['demo/_ext.so', arch], ['demo/lib/libtiny.so.1', arch]]);
  t.true(report.elves[0]!.needed.includes('libtiny.so.1'));

  const alone = await makeZip(`demo-1.0-${tag}.whl`, [{ name: 'demo/_ext.so', data: ext }]);
  t.deepEqual(verifyWheel(alone, { ...o, provided: ['libtiny.so.1'] }).problems, []);

  const missing = verifyWheel(alone, o);
  t.deepEqual(missing.unresolved, [{ member: 'demo/_ext.so', soname: 'libtiny.so.1' }]);
  t.deepEqual(missing.problems, [`demo/_ext.so needs libtiny.so.1, which the image does not have (searched ${libraryDirs(image, arch).join(', ')})`]);
});

// --- symbol versions --------------------------------------------------------------------------

/** libver.so.1 in two releases (old: VER_1; new: VER_1 and VER_2) and an extension that uses VER_2. */
let versioned: Promise<{ dir: string; arch: Arch; old: Buffer; current: Buffer; ext: Buffer; plain: Buffer }> | undefined;
function buildVersioned() {
  versioned ??= (async () => {
    const dir = tmp('ver');
    fs.mkdirSync(dir);
    fs.writeFileSync(path.join(dir, 'old.map'), 'VER_1 { global: old_fn; local: *; };\n');
    fs.writeFileSync(path.join(dir, 'new.map'), 'VER_1 { global: old_fn; local: *; };\nVER_2 { global: new_fn; } VER_1;\n');
    fs.writeFileSync(path.join(dir, 'old.c'), 'int old_fn(void) { return 1; }\n');
    fs.writeFileSync(path.join(dir, 'new.c'), 'int old_fn(void) { return 1; }\nint new_fn(void) { return 2; }\n');
    fs.writeFileSync(path.join(dir, 'ext.c'), 'int old_fn(void);\nint new_fn(void);\nint ext(void) { return old_fn() + new_fn(); }\n');
    const so = (out: string, src: string, map?: string) =>
      execa('gcc', ['-shared', '-fPIC', '-Wl,-soname,libver.so.1', ...(map ? [`-Wl,--version-script=${map}`] : []), '-o', out, src], { cwd: dir });
    for (const d of ['old', 'new', 'plain']) fs.mkdirSync(path.join(dir, d));
    await so('old/libver.so.1', 'old.c', 'old.map');
    await so('new/libver.so.1', 'new.c', 'new.map');
    await so('plain/libver.so.1', 'new.c');
    fs.symlinkSync('libver.so.1', path.join(dir, 'new', 'libver.so'));
    await execa('gcc', ['-shared', '-fPIC', '-o', 'ext.so', 'ext.c', '-Lnew', '-lver'], { cwd: dir });
    const read = (f: string) => fs.readFileSync(path.join(dir, f));
    const ext = read('ext.so');
    return { dir, arch: elfArch(readElfHeader(ext)!)!, old: read('old/libver.so.1'), current: read('new/libver.so.1'), ext, plain: read('plain/libver.so.1') };
  })();
  return versioned;
}

withGcc('readElfDynamic reads version needs and definitions as readelf -V shows them', async (t) => {
  const { dir, ext, current, old } = await buildVersioned();
  t.deepEqual(readElfDynamic(current)!.verdef, ['VER_1', 'VER_2']);
  t.deepEqual(readElfDynamic(old)!.verdef, ['VER_1']);
  const needs = readElfDynamic(ext)!.verneed;
  t.true(needs.some((n) => n.file === 'libver.so.1' && n.version === 'VER_2' && !n.weak), JSON.stringify(needs));
  const readelf = (await execa('readelf', ['-V', '--wide', path.join(dir, 'ext.so')])).stdout;
  const names = [...readelf.split('Version needs section')[1]!.matchAll(/Name: (\S+)\s+Flags/g)].map((m) => m[1]);
  t.deepEqual(needs.map((n) => n.version).sort(), names.sort());
  for (let n = 0; n < ext.length; n += 7) t.notThrows(() => readElfDynamic(ext.subarray(0, n)));
});

withGcc('verifyWheel: a member needing a symbol version the image library lacks is named, with the newest it has', async (t) => {
  const { arch, ext, old, current, plain } = await buildVersioned();
  const { triplet, wheelMachine } = archTable[arch];
  const tag = `cp311-cp311-linux_${wheelMachine}`;
  const wheel = await makeZip(`demo-1.0-${tag}.whl`, [{ name: 'demo/_ext.so', data: ext }]);
  const root = (lib: Buffer) => fakeRoot({ [`/usr/lib/${triplet}/libver.so.1`]: lib });

  const stale = verifyWheel(wheel, { rootHost: root(old), arch, python: '3.11' });
  t.deepEqual(stale.missingVersions, [{ member: 'demo/_ext.so', file: 'libver.so.1', library: `/usr/lib/${triplet}/libver.so.1`, versions: ['VER_2'] }]);
  t.deepEqual(stale.problems, [`demo/_ext.so needs VER_2 from libver.so.1, which the image's /usr/lib/${triplet}/libver.so.1 does not define (it has up to VER_1): it was built against a newer libver.so.1 than the board has`]);
  // The release it was linked against; and, as ld.so has it, a library without versions satisfies any.
  t.deepEqual(verifyWheel(wheel, { rootHost: root(current), arch, python: '3.11' }).problems, []);
  t.deepEqual(verifyWheel(wheel, { rootHost: root(plain), arch, python: '3.11' }).problems, []);
  // A copy shipped in the wheel is the one that counts.
  const shipping = await makeZip(`demo-1.0-${tag}.whl`, [{ name: 'demo/_ext.so', data: ext }, { name: 'demo/libver.so.1', data: old }]);
  t.regex(verifyWheel(shipping, { rootHost: root(current), arch, python: '3.11' }).problems.join('\n'), /needs VER_2 from libver.so.1, which the wheel's demo\/libver.so.1 does not define/);
});

test('compareVersions orders dotted version names by their numbers', (t) => {
  t.deepEqual(['GLIBCXX_3.4.29', 'GLIBCXX_3.4.9', 'GLIBCXX_3.4', 'GLIBCXX_3.4.30'].sort(compareVersions), ['GLIBCXX_3.4', 'GLIBCXX_3.4.9', 'GLIBCXX_3.4.29', 'GLIBCXX_3.4.30']);
  t.true(compareVersions('GLIBC_2.36', 'GLIBC_2.4') > 0);
});

test('the modules a wheel ships: packages, modules and extensions at its top, not its metadata or data', (t) => {
  t.deepEqual(
    modulesOf([
      'markupsafe/__init__.py',
      'markupsafe/_speedups.cpython-311-aarch64-linux-gnu.so',
      'MarkupSafe-2.1.2.dist-info/METADATA',
      'MarkupSafe-2.1.2.data/scripts/x',
      'six.py',
      '_cffi_backend.cpython-311-aarch64-linux-gnu.so',
      'legacy.so',
      'README.txt',
      'not-a-name/__init__.py',
      'empty_dir/data.json',
    ]),
    ['_cffi_backend', 'legacy', 'markupsafe', 'six'],
  );
  t.deepEqual(modulesOf(['x-1.0.dist-info/METADATA']), []);
});

test('a manylinux wheel for a newer glibc than the image\'s is refused by its tag, naming both; older or equal ones fit', (t) => {
  t.deepEqual(manylinuxGlibc('manylinux_2_28_aarch64'), { glibc: '2.28', machine: 'aarch64' });
  t.deepEqual(manylinuxGlibc('manylinux2014_armv7l'), { glibc: '2.17', machine: 'armv7l' });
  t.is(manylinuxGlibc('linux_aarch64'), undefined);
  const check = (file: string, glibc: string) => tagProblems(parseWheelName(file), { python: '3.9', arch: 'aarch64', glibc });
  t.deepEqual(check('numpy-1.26.4-cp39-cp39-manylinux_2_17_aarch64.manylinux2014_aarch64.whl', '2.31'), []);
  t.deepEqual(check('onnx-1.17.0-cp39-cp39-manylinux_2_28_aarch64.whl', '2.36'), []);
  t.deepEqual(check('onnx-1.17.0-cp39-cp39-manylinux_2_28_aarch64.whl', '2.27'), ['onnx-1.17.0-cp39-cp39-manylinux_2_28_aarch64.whl is for a newer glibc than the image\'s 2.27 (manylinux_2_28_aarch64 needs glibc 2.28)']);
  t.deepEqual(check('x-1.0-cp39-cp39-linux_aarch64.whl', '2.17'), [], 'a linux_ tag promises nothing: the symbol versions are checked instead');
  t.deepEqual(tagProblems(parseWheelName('onnx-1.17.0-cp39-cp39-manylinux_2_28_aarch64.whl'), { python: '3.9', arch: 'aarch64' }), [], 'without the image\'s glibc, no tag check');
});

// --- ARMv6 userlands (Raspberry Pi OS for the Pi Zero and 1) -----------------------------------
// test/fixtures/elf/armv{6,7}-hf.so: `int answer(void) { return 42; }` built with the host's
// arm-linux-gnueabihf-gcc-12 -O2 -shared -nostdlib -fPIC -s, -march=armv6+fp -marm or -march=armv7-a+fp.

test('the ARM build attributes of an ELF: Tag_CPU_arch v6 and v7; not ARM or damaged: none', (t) => {
  const v6 = fs.readFileSync('test/fixtures/elf/armv6-hf.so');
  const v7 = fs.readFileSync('test/fixtures/elf/armv7-hf.so');
  t.is(armCpuArch(v6), 6);
  t.is(armCpuArch(v7), 10);
  t.true(runsOnArmv6(6));
  t.false(runsOnArmv6(10));
  t.is(armCpuArch(synthElf({ cls: 2, machine: 183, needed: [] })), undefined);
  t.is(armCpuArch(v6.subarray(0, 200)), undefined, 'section headers beyond the end');
  t.is(armCpuArch(elfHeader({ cls: 1, machine: 40, flags: 0x05000400 })), undefined, 'no section headers');
});

test('an ARMv6 image: linux_armv6l wheels fit, linux_armv7l ones do not; an ARMv7 library in a wheel is named', async (t) => {
  const v6image = { python: '3.11', arch: 'armhf' as Arch, machine: 'armv6l' };
  t.deepEqual(tagProblems(parseWheelName('numpy-1.24.2-cp311-cp311-linux_armv6l.whl'), v6image), [], 'piwheels\' armv6l wheel');
  t.deepEqual(tagProblems(parseWheelName('numpy-1.24.2-cp311-cp311-linux_armv7l.whl'), v6image), ['numpy-1.24.2-cp311-cp311-linux_armv7l.whl is for platform linux_armv7l; the image needs linux_armv6l, manylinux*_armv6l or any']);
  t.deepEqual(tagProblems(parseWheelName('numpy-1.24.2-cp311-cp311-linux_armv6l.whl'), { python: '3.11', arch: 'armhf' }).length, 1, 'an ARMv7 image does not take armv6l');
  const root = fakeRoot({ '/lib/arm-linux-gnueabihf/libc.so.6': elfHeader({ cls: 1, machine: 40, flags: 0x05000400 }) });
  const zip = await makeZip('m-1.0-cp311-cp311-linux_armv6l.whl', [
    { name: 'm/v6.so', data: fs.readFileSync('test/fixtures/elf/armv6-hf.so') },
    { name: 'm/v7.so', data: fs.readFileSync('test/fixtures/elf/armv7-hf.so') },
  ]);
  const report = verifyWheel(zip, { rootHost: root, arch: 'armhf', machine: 'armv6l', python: '3.11' });
  t.deepEqual(report.problems, ['m/v7.so is built for ARM v7; the image\'s userland is ARMv6 (Raspberry Pi Zero and 1), where it stops with "Illegal instruction": build it with the image\'s compiler defaults (-march=armv6 -mfpu=vfp -marm)']);
  t.deepEqual(verifyWheel(zip.replace('armv6l', 'armv6l'), { rootHost: root, arch: 'armhf', python: '3.11' }).problems.filter((p) => /ARM v7/.test(p)), [], 'an ARMv7 image takes v7 code');
});
