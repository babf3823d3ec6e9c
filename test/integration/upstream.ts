// Real upstream projects, as people have them: Debian's orig tarballs (named foo_1.2.orig.tar.gz,
// not after their module) and their unpacked trees, built for the sample images with the wheel
// cache off, verified, and imported by the modules the wheel itself ships.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { readEntry, readZip } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { upstream } from '../helpers/upstream.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const images = { aarch64: sampleSync('aarch64'), armhf: sampleSync('armhf') };
const machine = { aarch64: 'aarch64', armhf: 'armv7l' } as const;

function manifestOf(out: string) {
  return JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: { file: string; name: string; version: string }[] };
}

for (const arch of ['aarch64', 'armhf'] as const) {
  test(`MarkupSafe from Debian's orig tarball for ${arch}: named from its metadata, markupsafe imported from the wheel`, async (t) => {
    const src = await upstream('markupsafe');
    t.regex(path.basename(src.tarball!), /^markupsafe_[\d.]+\.orig\.tar\.(gz|xz|bz2)$/);
    const out = tmpdir();
    const r = await imgbuild([images[arch], '--target', `local:${src.tarball}`, '--out', out]);
    t.is(r.exitCode, 0, r.all);
    const [w] = manifestOf(out).wheels;
    t.is(w?.name, 'MarkupSafe');
    t.is(w?.file, `MarkupSafe-${src.version.replace(/-.*/, '')}-cp311-cp311-linux_${machine[arch]}.whl`);
    const log = fs.readFileSync(path.join(out, 'logs', fs.readdirSync(path.join(out, 'logs')).find((f) => f !== 'setup.log')!), 'utf8');
    t.regex(log, /imported markupsafe from \/tmp\/imgbuild-verify-[^/]+\/markupsafe\/__init__\.py/);
    const members = readZip(path.join(out, w!.file)).map((e) => e.name);
    t.true(members.some((m) => /^markupsafe\/_speedups\..*\.so$/.test(m)), 'the C speedups were compiled');
    t.notRegex(r.all, /markupsafe_[\d.]+_orig/, 'nothing is named after the file');
  });
}

test('MarkupSafe from its unpacked tree: the same wheel name and modules', async (t) => {
  const src = await upstream('markupsafe');
  const out = tmpdir();
  const r = await imgbuild([images.aarch64, '--target', `local:${src.dir}`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const [w] = manifestOf(out).wheels;
  t.is(w?.name, 'MarkupSafe');
  const topLevel = readZip(path.join(out, w!.file)).find((e) => e.name.endsWith('.dist-info/top_level.txt'));
  t.is(topLevel && readEntry(path.join(out, w!.file), topLevel).toString().trim(), 'markupsafe');
});

function wheelOf(out: string) {
  const [w] = manifestOf(out).wheels;
  return w!;
}

function logOf(out: string): string {
  const logs = path.join(out, 'logs');
  return fs.readdirSync(logs).filter((f) => f !== 'setup.log').map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('\n');
}

for (const arch of ['aarch64', 'armhf'] as const) {
  test(`cffi (PyPI sdist in Debian's tarball) for ${arch}: libffi found by pkg-config from apt=, offline; cffi and _cffi_backend imported`, async (t) => {
    const src = await upstream('python-cffi');
    const out = tmpdir();
    const r = await imgbuild([images[arch], '--target', `local:${src.tarball},apt=libffi-dev+pkg-config`, '--offline', '--out', out]);
    t.is(r.exitCode, 0, r.all);
    const w = wheelOf(out);
    t.is(w.name, 'cffi');
    t.is(w.file, `cffi-1.15.1-cp311-cp311-linux_${machine[arch]}.whl`);
    t.regex(logOf(out), /imported _cffi_backend from \/tmp\/imgbuild-verify-[^\n]*\nimported cffi from /);
    t.regex((w as { aptPackages?: Record<string, string> }).aptPackages?.['libffi-dev'] ?? '', /^3\.4/, 'the manifest names the apt packages installed for the build, with their versions');
  });
}

test('msgpack (a .tar.xz without its module\'s name): its Cython requirement unmet offline stops it before compiling, naming cython3; apt=cython3 meets it', async (t) => {
  const src = await upstream('python-msgpack');
  t.regex(path.basename(src.tarball!), /\.orig\.tar\.xz$/);
  const out = tmpdir();
  const refused = await imgbuild([images.aarch64, '--target', `local:${src.tarball}`, '--offline', '--out', out]);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.stderr, /build requirements not met \(checked before anything was compiled\):\n\s+- Cython~=0\.29\.13: not installed; the image's apt has cython3/);
  t.regex(refused.stderr, new RegExp(`--target local:${src.tarball!.replace(/[.+]/g, '\\$&')},apt=cython3`));
  t.notRegex(logOf(out), /cythonize|gcc/, 'nothing was compiled');
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), []);

  const built = tmpdir();
  const r = await imgbuild([images.aarch64, '--target', `local:${src.tarball},apt=cython3`, '--offline', '--out', built]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(built);
  t.is(w.name, 'msgpack');
  t.is(w.file, 'msgpack-1.0.3-cp311-cp311-linux_aarch64.whl');
  // Cython from apt ran. (msgpack 1.0.3's C++ does not compile against Python 3.11 without
  // Debian's patch, which the archive here does not serve; its setup.py then ships the pure
  // Python fallback, as upstream designed.)
  t.regex(logOf(built), /cythonize: 'msgpack\/_cmsgpack\.pyx'/);
  t.regex(logOf(built), /imported msgpack from/);
});

// Debian's xxhash tarball is GitHub's: no VCS metadata for setuptools_scm (env= gives the version)
// and an empty deps/xxhash (a submodule), so it links the system libxxhash (XXHASH_LINK_SO).
const xxhash = (extra: string) => `apt=python3-setuptools-scm+libxxhash-dev,env=SETUPTOOLS_SCM_PRETEND_VERSION=3.2.0,env=XXHASH_LINK_SO=1${extra}`;

test('xxhash (setuptools_scm, no VCS metadata: env=) for armhf: the version from env=, linked to the board\'s libxxhash (runtime=)', async (t) => {
  const src = await upstream('python-xxhash');
  const out = tmpdir();
  const r = await imgbuild([images.armhf, '--target', `local:${src.dir},${xxhash(',runtime=libxxhash0')}`, '--offline', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  t.is(wheelOf(out).file, 'xxhash-3.2.0-cp311-cp311-linux_armv7l.whl');
  t.regex(logOf(out), /imported xxhash from/);
});

// hnswlib 0.8.0 (trixie's orig tarball): a pybind11 C++ extension whose tarball holds a relative
// symlink (python_bindings/setup.py -> ../setup.py), and whose setup.py asks for -march=native,
// which the image's cross compiler rejects, so the wheel is not tuned to the build machine.
test('hnswlib (pybind11 C++ extension, numpy, a tarball with an in-tree symlink) for aarch64: pybind11 and numpy from apt=, offline; hnswlib imported and used', async (t) => {
  const src = await upstream('hnswlib/trixie');
  const out = tmpdir();
  const use = 'python3 -c "import hnswlib, numpy; p = hnswlib.Index(space=\'l2\', dim=2); p.init_index(max_elements=3); p.add_items(numpy.array([[0, 0], [1, 1], [5, 5]], dtype=numpy.float32)); labels, _ = p.knn_query(numpy.array([[0.9, 0.9]], dtype=numpy.float32), k=1); assert labels[0][0] == 1, labels"';
  const r = await imgbuild([images.aarch64, '--target', `local:${src.tarball},apt=python3-pybind11+python3-numpy,runtime=python3-numpy`, '--offline', '--out', out, '--test-command', use]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.is(w.name, 'hnswlib');
  t.is(w.file, `hnswlib-${src.version}-cp311-cp311-linux_aarch64.whl`);
  t.true(readZip(path.join(out, w.file)).some((e) => /^hnswlib\.cpython-311-aarch64-linux-gnu\.so$/.test(e.name)), 'the C++ extension was compiled');
  t.regex(logOf(out), /imported hnswlib from \/tmp\/imgbuild-verify-/);
  t.regex(logOf(out), /removing unsupported compiler flag: -march=native/);
});

// tomli 2.2.1 (trixie's orig tarball): a pure-Python PEP 621 project built by flit_core, which
// bookworm ships inside its flit package.
test('tomli (flit_core, PEP 621, pure Python) for armhf: flit_core unmet offline names apt=flit; with it, a py3-none-any wheel', async (t) => {
  const src = await upstream('python-tomli/trixie');
  const out = tmpdir();
  const refused = await imgbuild([images.armhf, '--target', `local:${src.tarball}`, '--offline', '--out', out]);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.stderr, /- flit_core>=3\.2\.0,<4: not installed; the image's apt has flit\n/);
  t.regex(refused.stderr, /,apt=flit;/);

  const built = tmpdir();
  const r = await imgbuild([images.armhf, '--target', `local:${src.tarball},apt=flit`, '--offline', '--out', built]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(built) as { name: string; file: string; buildRequirements?: { requirement: string; from: string }[] };
  t.is(w.file, 'tomli-2.2.1-py3-none-any.whl');
  t.is(w.buildRequirements?.find((b) => b.requirement.startsWith('flit_core'))?.from, 'image');
  t.regex(logOf(built), /imported tomli from \/tmp\/imgbuild-verify-/);
});

test('a library only the build layer has (libyaml from apt=) is refused, naming its package and runtime=; with runtime= it is the board\'s, and the manifest says so', async (t) => {
  const project = path.resolve('test/fixtures/py/cext-yaml');
  const out = tmpdir();
  const refused = await imgbuild([images.aarch64, '--target', `local:${project},apt=libyaml-dev`, '--offline', '--out', out]);
  t.is(refused.exitCode, 1, refused.all);
  t.regex(refused.stderr, /libyaml-0\.so\.2 exists only in the build layer .* It comes from libyaml-0-2: if the board has libyaml-0-2 installed, say so with runtime=libyaml-0-2/s);
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), []);

  const ok = tmpdir();
  const r = await imgbuild([images.aarch64, '--target', `local:${project}`, '--apt', 'libyaml-dev', '--runtime-apt', 'libyaml-0-2', '--offline', '--out', ok, '--test-command', 'python3 -c "import imgbuild_yaml; assert imgbuild_yaml.version().startswith(\'0.2\'), imgbuild_yaml.version()"']);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(ok) as { name: string; runtimeApt?: string[] };
  t.is(w.name, 'imgbuild_yaml');
  t.deepEqual(w.runtimeApt, ['libyaml-0-2']);
});

test('--test-command: a failing command fails the target with its output, and no wheel is reported', async (t) => {
  const project = path.resolve('test/fixtures/py/cext-hello');
  const out = tmpdir();
  const r = await imgbuild([images.aarch64, '--target', `local:${project}`, '--out', out, '--test-command', 'echo "testing {wheel}"; python3 -c "import imgbuild_hello; raise SystemExit(7)"']);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /--test-command failed with exit code 7 for imgbuild_hello-1\.0\.0-cp311-cp311-linux_aarch64\.whl:\n[\s\S]*testing \/workspace\/src\/\S+\/dist\/imgbuild_hello-1\.0\.0-cp311-cp311-linux_aarch64\.whl/);
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), []);
});

test('bad target options: a malformed apt= or env= is a usage error naming it, before anything is read', async (t) => {
  const out = tmpdir();
  const apt = await imgbuild([images.aarch64, '--target', 'local:/nonexistent,apt=Not_A_Package', '--out', out]);
  t.is(apt.exitCode, 2, apt.all);
  t.regex(apt.stderr, /"Not_A_Package" is not a Debian package name/);
  const env = await imgbuild([images.aarch64, '--target', 'local:/nonexistent,env=JUSTANAME', '--out', out]);
  t.is(env.exitCode, 2, env.all);
  t.regex(env.stderr, /env=JUSTANAME is not NAME=VALUE/);
});

test('a build requirement no index offers, offline: refused before compiling; from a --find-links wheelhouse it is installed into the workspace and the manifest says which', async (t) => {
  const project = path.resolve('test/fixtures/py/needs-intree');
  const house = tmpdir();
  // The requirement's wheel, made on the host by the front end from the in-tree backend fixture.
  const made = await execa('python3', [path.resolve('lib/build/build-wheel.py'), house, path.resolve('test/fixtures/py/intree-backend')], { reject: false, all: true });
  t.is(made.exitCode, 0, made.all);
  const out = tmpdir();
  const refused = await imgbuild([images.aarch64, '--target', `local:${project}`, '--offline', '--out', out]);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.stderr, /- intree>=1\.0: not installed\n/);
  t.regex(refused.stderr, /let pip fetch them \(without --offline, or --find-links DIR holding them\)/);

  const ok = tmpdir();
  const r = await imgbuild([images.aarch64, '--target', `local:${project}`, '--offline', '--find-links', house, '--out', ok]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(ok) as { name: string; buildRequirements?: unknown[]; pipSources?: { offline: boolean; findLinks: string[] } };
  t.is(w.name, 'needs_intree');
  t.deepEqual(w.buildRequirements?.find((b) => (b as { requirement: string }).requirement === 'intree>=1.0'), { requirement: 'intree>=1.0', version: '1.0', from: 'workspace' });
  t.deepEqual(w.buildRequirements?.find((b) => (b as { requirement: string }).requirement === 'setuptools'), { requirement: 'setuptools', version: '66.1.1', from: 'image' });
  t.true(w.pipSources?.offline);
  t.deepEqual(w.pipSources?.findLinks, [house]);
});

test('a recipe built from a tarball (--source NAME=TARBALL): the plan unpacks it in the chroot before the recipe\'s commands', async (t) => {
  const src = await upstream('python-cffi');
  const r = await imgbuild([images.aarch64, '--target', 'onnx@1.17.0', '--source', `onnx=${src.tarball}`, '--dry-run', '--json']);
  t.is(r.exitCode, 0, r.all);
  const plan = JSON.parse(r.stdout) as { targets: { commands: string[][]; source: { path: string } }[] };
  t.is(plan.targets[0]!.source.path, src.tarball!);
  t.deepEqual(plan.targets[0]!.commands[0], ['python3', '/workspace/.imgbuild/build-wheel.py', '--unpack', `./${path.basename(src.tarball!)}`, '.']);
  t.deepEqual(plan.targets[0]!.commands[1], ['python3', '/workspace/.imgbuild/build-wheel.py', 'dist', '.']);
});
