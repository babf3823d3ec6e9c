// --accel full: the wheel front end and backend run under a host-architecture Python of exactly the
// image's version (the host's own for bookworm, a Python tree of the image's release for bullseye
// and trixie), the compilers native as with --accel cross. Every wheel must be the very same as the
// one --accel cross builds with the image's emulated Python; a build that needs the board's own
// compiled code must be noticed and built again under the emulated Python. Real sample images,
// real upstream projects, real mounts and qemu; the host unchanged after each test.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { upstream } from '../helpers/upstream.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const fixtures = path.resolve('test/fixtures/py');

interface Wheel {
  file: string;
  python?: string;
  accel: string;
}
const manifestOf = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Wheel[] };
const sha = (file: string) => createHash('sha256').update(fs.readFileSync(file)).digest('hex');

/** Each wheel of a build by file name, with its sha256. */
function wheelsOf(out: string): Record<string, string> {
  return Object.fromEntries(manifestOf(out).wheels.map((w) => [w.file, sha(path.join(out, w.file))]));
}

/** The same targets built with --accel full, then --accel cross: both outputs. */
async function fullAndCross(t: { is: (a: unknown, b: unknown, m?: string) => void }, image: string, targets: string[], extra: string[] = []): Promise<{ full: string; cross: string; fullLog: string }> {
  const args = [image, ...targets.flatMap((x) => ['--target', x]), '--no-wheel-cache', ...extra];
  const full = tmpdir();
  const r = await imgbuild([...args, '--accel', 'full', '--out', full]);
  t.is(r.exitCode, 0, r.all);
  const cross = tmpdir();
  const c = await imgbuild([...args, '--accel', 'cross', '--out', cross]);
  t.is(c.exitCode, 0, c.all);
  return { full, cross, fullLog: r.all };
}

const releases = [
  { name: 'bookworm aarch64', image: () => sampleSync('aarch64'), version: /3\.11\.\d+/, from: 'the host', tag: 'cp311-cp311-linux_aarch64', major: '12', fresh: false },
  { name: 'bullseye armhf', image: () => sampleSync('armhf', 'mbr', 'bullseye'), version: /3\.9\.\d+/, from: 'the toolchain tree bullseye-buildtools-python3.9', tag: 'cp39-cp39-linux_armv7l', major: '10', fresh: true },
  { name: 'trixie aarch64', image: () => sampleSync('aarch64', 'mbr', 'trixie'), version: /3\.13\.\d+/, from: 'the toolchain tree trixie-buildtools-python3.13', tag: 'cp313-cp313-linux_aarch64', major: '14', fresh: false },
] as const;

for (const r of releases) {
  test(`${r.name}: a C++ extension and MarkupSafe built under ${r.from === 'the host' ? "the host's Python" : 'a Python tree of the release'}: the very wheels the emulated Python builds`, async (t) => {
    const markupsafe = await upstream('markupsafe');
    // bullseye in a fresh cache: its Python tree (and gcc tree) are made, saying so.
    const cache = r.fresh ? ['--cache-dir', tmpdir()] : [];
    // Run for each wheel: the C++ one must have been compiled by the image's gcc version.
    const check = `python3 -c "import importlib.util as u; m = u.find_spec('imgbuild_cxx_hello') and __import__('imgbuild_cxx_hello'); assert not m or m.gcc_major() == ${r.major}, m.gcc_major()"`;
    const { full, cross, fullLog } = await fullAndCross(t, r.image(), [`local:${path.join(fixtures, 'cxx-hello')}`, `local:${markupsafe.tarball}`], [...cache, '--test-command', check]);
    if (r.fresh) t.regex(fullLog, /make the Python 3\.9 and build tools tree of bullseye \(mmdebstrap python3\.9 dash make cmake ninja-build protobuf-compiler, host architecture, once\)/);
    // The image's dash is the tree's version, not the host's: it runs natively from the tree (make
    // too: the host's where the versions agree, bullseye's 4.3, else the tree's).
    if (r.from !== 'the host') t.regex(fullLog, /accel full: build tools run natively, the same versions as the image's: sh \(dash [^,]+, \S+-buildtools-python3\.\d+\), make \(make [^)]+\)/);
    t.regex(fullLog, new RegExp(`accel full: Python ${r.version.source} of ${r.from} runs the front end and backend natively, configured for the image \\(/run/imgbuild-accel/py/bin/python3\\.\\d+\\)`));
    const wheels = wheelsOf(full);
    // (trixie's setuptools spells the distribution markupsafe.)
    t.deepEqual(Object.keys(wheels).map((f) => f.toLowerCase()).sort(), [`imgbuild_cxx_hello-1.0.0-${r.tag}.whl`, `markupsafe-2.1.2-${r.tag}.whl`]);
    t.deepEqual(wheels, wheelsOf(cross), 'byte for byte the wheels of the emulated Python');
    for (const w of manifestOf(full).wheels) t.regex(w.python ?? '', new RegExp(`^host Python ${r.version.source} \\(--accel full\\)$`));
    for (const w of manifestOf(cross).wheels) t.is(w.python, undefined);
  });
}

test("real projects (cffi, msgpack with Cython, hnswlib with pybind11 and numpy, tomli with flit) under --accel full: the same wheels as emulated Python builds; hnswlib's setup.py imports the board's numpy, which is noticed and built again emulated", async (t) => {
  const [cffi, msgpack, hnswlib, tomli] = await Promise.all(['python-cffi', 'python-msgpack', 'hnswlib/trixie', 'python-tomli/trixie'].map((p) => upstream(p)));
  const targets = [`local:${cffi!.tarball},apt=libffi-dev+pkg-config`, `local:${msgpack!.tarball},apt=cython3`, `local:${hnswlib!.tarball},apt=python3-pybind11+python3-numpy,runtime=python3-numpy`, `local:${tomli!.tarball},apt=flit`];
  const { full, cross, fullLog } = await fullAndCross(t, sampleSync('aarch64'), targets, ['--offline']);
  t.deepEqual(wheelsOf(full), wheelsOf(cross), 'byte for byte the wheels of the emulated Python');
  t.is(Object.keys(wheelsOf(full)).length, 4);
  t.regex(fullLog, /hnswlib_0\.8\.0\.orig\.tar\.gz: the build ran the board's own code under the host Python \(import numpy\.core\._multiarray_umath: \/usr\/lib\/python3\/dist-packages\/numpy\/core\/_multiarray_umath\.cpython-311-aarch64-linux-gnu\.so is compiled for the board\): building it again under the image's emulated Python/);
  const byName = Object.fromEntries(manifestOf(full).wheels.map((w) => [w.file.split('-')[0], w.python]));
  t.regex(byName.hnswlib ?? '', /^emulated: the build ran the board's own code/);
  for (const n of ['cffi', 'msgpack', 'tomli']) t.regex(byName[n] ?? '', /^host Python 3\.11\.\d+ \(--accel full\)$/, n);
});

test("a setup.py that imports the board's own C extension (installed with --with-wheel): the host Python cannot load it, imgbuild notices, builds the target again under the emulated Python, and the wheel holds the board's answer", async (t) => {
  const image = sampleSync('aarch64');
  const hello = tmpdir();
  const first = await imgbuild([image, '--target', `local:${path.join(fixtures, 'cext-hello')}`, '--accel', 'full', '--out', hello]);
  t.is(first.exitCode, 0, first.all);
  const wheel = path.join(hello, manifestOf(hello).wheels[0]!.file);
  const out = tmpdir();
  const r = await imgbuild([image, '--target', `local:${path.join(fixtures, 'runs-target-code')}`, '--with-wheel', wheel, '--accel', 'full', '--no-wheel-cache', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /runs-target-code: the build ran the board's own code under the host Python \(import imgbuild_hello: \/usr\/local\/lib\/python3\.11\/dist-packages\/imgbuild_hello\.cpython-311-aarch64-linux-gnu\.so is compiled for the board\): building it again under the image's emulated Python/);
  const [w] = manifestOf(out).wheels;
  t.regex(w!.python ?? '', /^emulated: /);
  const { readEntry, readZip } = await import('../../lib/parse/zip.js');
  const file = path.join(out, w!.file);
  const init = readZip(file).find((e) => e.name === 'runs_target_code/__init__.py');
  t.is(init && readEntry(file, init).toString(), "ANSWER = 'aarch64 5'\n", "the board's module answered, not an ImportError");
});

for (const [arch, machine] of [['aarch64', "'aarch64 aarch64 8'"], ['armhf', "'armv7l armv7l 4'"]] as const) {
  test(`${arch}: cmake, make and sh run as the host's programs (the same Debian versions as the build layer's), and cmake still sees the board's machine: the same wheel as --accel cross`, async (t) => {
    const { full, cross, fullLog } = await fullAndCross(t, sampleSync(arch), [`local:${path.join(fixtures, 'cmake-probe')},apt=cmake`]);
    t.regex(fullLog, /accel full: build tools run natively, the same versions as the image's: sh \(dash [^)]+\), make \(make [^)]+\), cmake \(cmake 3\.25\.[^)]+\)/);
    t.deepEqual(wheelsOf(full), wheelsOf(cross), 'byte for byte the wheel of emulated cmake and make');
    const [w] = manifestOf(full).wheels as (Wheel & { native?: string[] })[];
    t.deepEqual(w!.native?.map((n) => n.split(' ')[0]), ['python', 'sh', 'make', 'cmake']);
    const { readEntry, readZip } = await import('../../lib/parse/zip.js');
    const file = path.join(full, w!.file);
    const info = readZip(file).find((e) => e.name === 'cmake_probe/_machine.py');
    t.is(info && readEntry(file, info).toString(), `MACHINE = ${machine}\n`, "cmake's processor and pointer size are the board's");
  });
}
