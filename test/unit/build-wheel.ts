// lib/build/build-wheel.py, the one-process PEP 517 front end, run with the host's python3 on a project
// whose backend lives in its own tree (no setuptools or wheel needed). The integration tests run
// it inside real images for setuptools projects.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { needs, unless } from '../helpers/tools.js';
import { wheelFrontendSource } from '../../lib/targets/local.js';
import { readEntry, readZip } from '../../lib/parse/zip.js';

const fixture = path.resolve('test/fixtures/py/intree-backend');
const work = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-frontend-'));
test.after.always(() => fs.rmSync(work, { recursive: true, force: true }));

const withPython = needs('python3');

let serial = 0;
function copyProject(): string {
  const dir = path.join(work, `p${++serial}`, 'intree-1.0');
  fs.cpSync(fixture, dir, { recursive: true });
  return dir;
}

function frontend(cwd: string, args: string[], env: Record<string, string> = {}) {
  return execa('python3', ['-S', wheelFrontendSource, ...args], { cwd, all: true, reject: false, env: { PYTHONDONTWRITEBYTECODE: '1', ...env } });
}

function builtIn(wheel: string): string {
  const zip = readZip(wheel);
  return readEntry(wheel, zip.find((e) => e.name.endsWith('/built-in'))!).toString();
}

withPython('a project directory: the in-tree backend (backend-path) builds in the project directory', async (t) => {
  const dir = copyProject();
  const r = await frontend(dir, ['dist', '.']);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /built intree-1\.0-py3-none-any\.whl with simple_backend/);
  const wheel = path.join(dir, 'dist', 'intree-1.0-py3-none-any.whl');
  t.true(fs.existsSync(wheel));
  t.is(builtIn(wheel), dir);
});

withPython('an sdist: unpacked beside the wheel directory, built there, the unpacked copy removed', async (t) => {
  const dir = copyProject();
  const parent = path.dirname(dir);
  await execa('tar', ['-czf', 'intree-1.0.tar.gz', 'intree-1.0'], { cwd: parent });
  fs.rmSync(dir, { recursive: true });
  const r = await frontend(parent, ['dist', './intree-1.0.tar.gz']);
  t.is(r.exitCode, 0, r.all);
  const wheel = path.join(parent, 'dist', 'intree-1.0-py3-none-any.whl');
  t.regex(builtIn(wheel), new RegExp(`^${parent}/unpack-[^/]+/intree-1\\.0$`));
  t.deepEqual(fs.readdirSync(parent).sort(), ['dist', 'intree-1.0.tar.gz']);
});

withPython('an sdist with a member outside its directory is refused and writes nothing outside', async (t) => {
  const dir = copyProject();
  const parent = path.dirname(dir);
  const script = 'import io, sys, tarfile\nwith tarfile.open(sys.argv[1], "w:gz") as t:\n  for n in ("x-1.0/pyproject.toml", "x-1.0/../../escaped"):\n    i = tarfile.TarInfo(n); i.size = 1; t.addfile(i, io.BytesIO(b"x"))';
  await execa('python3', ['-c', script, path.join(parent, 'bad-1.0.tar.gz')]);
  const r = await frontend(parent, ['dist', './bad-1.0.tar.gz']);
  t.not(r.exitCode, 0);
  t.regex(r.all, /bad-1\.0\.tar\.gz|escaped|outside/i);
  t.false(fs.existsSync(path.join(work, 'escaped')));
  t.false(fs.existsSync(path.join(parent, '..', 'escaped')));
  t.false(fs.existsSync(path.join(parent, 'dist', 'intree-1.0-py3-none-any.whl')));
});

withPython('no TOML parser in the image: it hands over to pip wheel --no-deps --no-build-isolation with the same arguments', async (t) => {
  const dir = copyProject();
  // An image Python without tomllib, tomli or pip's vendored parser: modules that fail to import,
  // and a pip whose `-m pip` only prints what it was given.
  const shadow = path.join(work, `shadow${++serial}`);
  fs.mkdirSync(path.join(shadow, 'pip'), { recursive: true });
  fs.writeFileSync(path.join(shadow, 'tomllib.py'), 'raise ImportError("no tomllib here")\n');
  fs.writeFileSync(path.join(shadow, 'tomli.py'), 'raise ImportError("no tomli here")\n');
  fs.writeFileSync(path.join(shadow, 'pip', '__init__.py'), '');
  fs.writeFileSync(path.join(shadow, 'pip', '__main__.py'), 'import sys\nprint("pip got", sys.argv[1:])\n');
  const r = await frontend(dir, ['dist', '.'], { PYTHONPATH: shadow });
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /no TOML parser .* building with pip instead/);
  t.regex(r.all, /pip got \['wheel', '--no-deps', '--no-build-isolation', '-w', '\S+\/dist', '\.'\]/);
});

withPython('a project without pyproject.toml gets setuptools\' legacy backend, as pip gives it', async (t) => {
  const dir = copyProject();
  fs.rmSync(path.join(dir, 'pyproject.toml'));
  // A stand-in setuptools on the path shows which backend was asked for.
  const shadow = path.join(work, `shadow${++serial}`);
  fs.mkdirSync(path.join(shadow, 'setuptools'), { recursive: true });
  fs.writeFileSync(path.join(shadow, 'setuptools', '__init__.py'), '');
  fs.mkdirSync(path.join(shadow, 'setuptools-65.0.dist-info'));
  fs.writeFileSync(path.join(shadow, 'setuptools-65.0.dist-info', 'METADATA'), 'Metadata-Version: 2.1\nName: setuptools\nVersion: 65.0\n');
  fs.writeFileSync(path.join(shadow, 'setuptools', 'build_meta.py'), 'class _Legacy:\n  def build_wheel(self, d, c=None, m=None):\n    print("legacy backend in", __import__("os").getcwd()); return "none.whl"\n__legacy__ = _Legacy()\n');
  const r = await frontend(dir, ['dist', '.'], { PYTHONPATH: shadow });
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, new RegExp(`legacy backend in ${dir}\\n`));
  t.regex(r.all, /built none\.whl with setuptools\.build_meta:__legacy__/);
});

withPython('a backend that fails: its error and a non-zero exit, no wheel', async (t) => {
  const dir = copyProject();
  fs.appendFileSync(path.join(dir, '_backend', 'simple_backend.py'), '\ndef build_wheel(*a, **k):\n    raise RuntimeError("compiler exploded")\n');
  const r = await frontend(dir, ['dist', '.']);
  t.not(r.exitCode, 0);
  t.regex(r.all, /RuntimeError: compiler exploded/);
  t.regex(r.all, /build-wheel: simple_backend failed to build the wheel of \S+ \(RuntimeError: compiler exploded\)/);
  t.deepEqual(fs.readdirSync(path.join(dir, 'dist')), []);
});

withPython('a backend that exits with a message (as setuptools does for a failed compiler): the message, exit 1, no wheel', async (t) => {
  const dir = copyProject();
  fs.appendFileSync(path.join(dir, '_backend', 'simple_backend.py'), '\ndef build_wheel(*a, **k):\n    raise SystemExit("error: command \'/usr/bin/gcc\' failed with exit code 1")\n');
  const r = await frontend(dir, ['dist', '.']);
  t.is(r.exitCode, 1);
  t.regex(r.all, /build-wheel: simple_backend failed to build the wheel of \S+intree-1\.0 \(error: command '\/usr\/bin\/gcc' failed with exit code 1\)/);
  t.deepEqual(fs.readdirSync(path.join(dir, 'dist')), []);
});

withPython('IMGBUILD_STORE_WHEELS=1: the wheel is written with its members stored (imgbuild deflates it on the host)', async (t) => {
  const methods = async (env: Record<string, string>) => {
    const dir = copyProject();
    // The fixture's backend deflates, as wheel and setuptools do.
    const backend = path.join(dir, '_backend', 'simple_backend.py');
    fs.writeFileSync(backend, fs.readFileSync(backend, 'utf8').replace("zipfile.ZipFile(os.path.join(wheel_directory, filename), 'w')", "zipfile.ZipFile(os.path.join(wheel_directory, filename), 'w', zipfile.ZIP_DEFLATED)"));
    const r = await frontend(dir, ['dist', '.'], env);
    t.is(r.exitCode, 0, r.all);
    return [...new Set(readZip(path.join(dir, 'dist', 'intree-1.0-py3-none-any.whl')).map((e) => e.method))];
  };
  t.deepEqual(await methods({}), [8]);
  t.deepEqual(await methods({ IMGBUILD_STORE_WHEELS: '1' }), [0]);
});

withPython('a tarball of any name with no top directory: the project at its top is built', async (t) => {
  const dir = copyProject();
  const parent = path.dirname(dir);
  await execa('tar', ['-cJf', path.join(parent, 'v1.0.tar.xz'), '.'], { cwd: dir });
  fs.rmSync(dir, { recursive: true });
  const r = await frontend(parent, ['dist', './v1.0.tar.xz']);
  t.is(r.exitCode, 0, r.all);
  t.true(fs.existsSync(path.join(parent, 'dist', 'intree-1.0-py3-none-any.whl')));
  t.deepEqual(fs.readdirSync(parent).sort(), ['dist', 'v1.0.tar.xz']);
});

withPython('a tarball with neither one top directory nor a project at its top is refused, naming what it holds', async (t) => {
  const dir = path.join(work, `loose${++serial}`);
  fs.mkdirSync(path.join(dir, 'src', 'a'), { recursive: true });
  fs.mkdirSync(path.join(dir, 'src', 'b'));
  await execa('tar', ['-czf', path.join(dir, 'loose.tar.gz'), 'a', 'b'], { cwd: path.join(dir, 'src') });
  const r = await frontend(dir, ['dist', './loose.tar.gz']);
  t.not(r.exitCode, 0);
  t.regex(r.all, /loose\.tar\.gz holds no Python project: .*\(it has a, b\)/);
});

withPython('--unpack: a recipe\'s tarball laid out in its source directory, the archive removed', async (t) => {
  const dir = copyProject();
  const parent = path.dirname(dir);
  await execa('tar', ['-czf', 'project_1.0.orig.tar.gz', 'intree-1.0'], { cwd: parent });
  const src = path.join(parent, 'src');
  fs.mkdirSync(src);
  fs.renameSync(path.join(parent, 'project_1.0.orig.tar.gz'), path.join(src, 'project_1.0.orig.tar.gz'));
  const r = await frontend(src, ['--unpack', './project_1.0.orig.tar.gz', '.']);
  t.is(r.exitCode, 0, r.all);
  t.deepEqual(fs.readdirSync(src).sort(), fs.readdirSync(dir).sort());
  t.regex(r.all, /unpacked project_1\.0\.orig\.tar\.gz into/);
});

// Distributions the front end sees as installed: dist-info directories on PYTHONPATH.
function fakeSite(dists: Record<string, { version: string; requires?: string[] }>): string {
  const site = path.join(work, `site${++serial}`);
  fs.mkdirSync(site);
  for (const [name, d] of Object.entries(dists)) {
    const info = path.join(site, `${name.replace(/-/g, '_')}-${d.version}.dist-info`);
    fs.mkdirSync(info, { recursive: true });
    fs.writeFileSync(path.join(info, 'METADATA'), `Metadata-Version: 2.1\nName: ${name}\nVersion: ${d.version}\n${(d.requires ?? []).map((r) => `Requires-Dist: ${r}\n`).join('')}`);
  }
  return site;
}

// The host's own copy of `packaging`, linked into a site (the front end finds it as an image would).
const hostPackaging = (() => {
  const r = execaSync('python3', ['-c', 'import os, packaging; print(os.path.dirname(packaging.__file__))'], { reject: false });
  return r.exitCode === 0 ? String(r.stdout).trim() : undefined;
})();
const withPackaging = unless(hostPackaging ? undefined : 'the host python3 has no packaging module; specifiers are checked in the integration tests');

function linkPackaging(site: string): void {
  fs.symlinkSync(hostPackaging!, path.join(site, 'packaging'));
}

function setRequires(dir: string, requires: string[]): void {
  const file = path.join(dir, 'pyproject.toml');
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('requires = []', `requires = ${JSON.stringify(requires)}`));
}

withPackaging('build requirements that are not met stop the build before the backend runs, each named with what is installed', async (t) => {
  const dir = copyProject();
  setRequires(dir, ['present>=1.0', 'missing-dist', 'old>=2', 'skipped; python_version < "3"']);
  const site = fakeSite({ present: { version: '1.0', requires: ['dep-of-present', 'optional; extra == "x"'] }, old: { version: '1.5' } });
  linkPackaging(site);
  const r = await frontend(dir, ['dist', '.'], { PYTHONPATH: site });
  t.is(r.exitCode, 3, r.all);
  const line = r.all.split('\n').find((l) => l.startsWith('imgbuild-unmet-requirements: '))!;
  t.deepEqual(JSON.parse(line.slice('imgbuild-unmet-requirements: '.length)), [
    { requirement: 'missing-dist', installed: null, why: 'not installed' },
    { requirement: 'old>=2', installed: '1.5', why: '1.5 is installed' },
    { requirement: 'dep-of-present', installed: null, why: 'needed by present, not installed' },
  ]);
  t.false(fs.existsSync(path.join(dir, 'dist', 'intree-1.0-py3-none-any.whl')), 'nothing was built');
});

withPython('unmet build requirements are installed with pip into IMGBUILD_BUILD_REQS (not the image), seen by the backend, then built', async (t) => {
  const dir = copyProject();
  setRequires(dir, ['needed>=2']);
  const site = fakeSite({});
  // A pip that "installs" NAME>=V as NAME-9.0 dist-info in --target, and says what it was asked.
  fs.mkdirSync(path.join(site, 'pip'));
  fs.writeFileSync(path.join(site, 'pip', '__init__.py'), '');
  fs.writeFileSync(path.join(site, 'pip', '__main__.py'), [
    'import os, re, sys',
    'args = sys.argv[1:]',
    'print("pip got", args)',
    'target = args[args.index("--target") + 1]',
    'for req in [a for a in args if not a.startswith("-") and a not in ("install", target)]:',
    '    name = re.match(r"[A-Za-z0-9_.-]+", req).group(0)',
    '    info = os.path.join(target, name.replace("-", "_") + "-9.0.dist-info")',
    '    os.makedirs(info)',
    '    open(os.path.join(info, "METADATA"), "w").write("Metadata-Version: 2.1\\nName: %s\\nVersion: 9.0\\n" % name)',
  ].join('\n'));
  const reqs = path.join(work, `reqs${++serial}`);
  const report = path.join(reqs, '..', `report${serial}`, 'intree.json');
  const r = await frontend(dir, ['dist', '.'], { PYTHONPATH: site, IMGBUILD_BUILD_REQS: reqs, IMGBUILD_BUILD_REPORT: report, IMGBUILD_CONFIG_SETTINGS: JSON.stringify({ requires: 'wheel-time' }) });
  t.is(r.exitCode, 0, r.all);
  t.deepEqual(JSON.parse(fs.readFileSync(report, 'utf8')), [
    { requirement: 'needed>=2', version: '9.0', from: 'workspace' },
    { requirement: 'wheel-time', version: '9.0', from: 'workspace' },
  ]);
  t.regex(r.all, /pip got \['install', '--no-deps', '--upgrade', '--target', '[^']+', 'needed>=2'\]/);
  t.regex(r.all, /pip got \[.*'wheel-time'\]/, 'get_requires_for_build_wheel asked for it with the config settings');
  t.true(fs.existsSync(path.join(reqs, 'needed-9.0.dist-info')));
  const wheel = path.join(dir, 'dist', 'intree-1.0-py3-none-any.whl');
  const settings = readEntry(wheel, readZip(wheel).find((e) => e.name.endsWith('/config-settings'))!).toString();
  t.deepEqual(JSON.parse(settings), { requires: 'wheel-time' }, 'the config settings reached build_wheel');
});

withPackaging('--check: what the environment misses of a recipe\'s pins, installed versions named, nothing installed', async (t) => {
  const site = fakeSite({ numpy: { version: '1.24.2' }, wheel: { version: '0.38.4' } });
  linkPackaging(site);
  const r = await frontend(work, ['--check', 'numpy<1.24', 'wheel', 'pytest-runner'], { PYTHONPATH: site });
  t.is(r.exitCode, 0, r.all);
  const line = r.all.split('\n').find((l) => l.startsWith('imgbuild-checked-requirements: '))!;
  t.deepEqual(JSON.parse(line.slice('imgbuild-checked-requirements: '.length)), [
    { requirement: 'numpy<1.24', installed: '1.24.2', why: '1.24.2 is installed' },
    { requirement: 'pytest-runner', installed: null, why: 'not installed' },
  ]);
});

withPackaging('a program on PATH meets the PyPI distribution that only wraps it (onnx\'s "cmake" met by the image\'s apt cmake), its version checked; the report names the program', async (t) => {
  const bin = path.join(work, `bin${++serial}`);
  fs.mkdirSync(bin);
  fs.writeFileSync(path.join(bin, 'cmake'), '#!/bin/sh\necho "cmake version 3.25.1"\n', { mode: 0o755 });
  const site = fakeSite({});
  linkPackaging(site);
  const env = { PYTHONPATH: site, PATH: `${bin}:/usr/bin:/bin` };
  const dir = copyProject();
  setRequires(dir, ['cmake>=3.14']);
  const report = path.join(work, `report${serial}`, 'r.json');
  const ok = await frontend(dir, ['dist', '.'], { ...env, IMGBUILD_BUILD_REPORT: report });
  t.is(ok.exitCode, 0, ok.all);
  t.deepEqual(JSON.parse(fs.readFileSync(report, 'utf8')), [{ requirement: 'cmake>=3.14', version: '3.25.1', from: 'program', path: path.join(bin, 'cmake') }]);
  const newer = copyProject();
  setRequires(newer, ['cmake>=3.26']);
  const refused = await frontend(newer, ['dist', '.'], env);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.all, /imgbuild-unmet-requirements: \[\{"requirement": "cmake>=3\.26", "installed": "3\.25\.1", "why": "3\.25\.1 is installed"\}\]/);
});

withPython('--unpack: a project file named like its archive is kept (the archive goes first)', async (t) => {
  const dir = path.join(work, `same${++serial}`);
  fs.mkdirSync(path.join(dir, 'x-1.0'), { recursive: true });
  fs.writeFileSync(path.join(dir, 'x-1.0', 'setup.py'), 'print("x")\n');
  fs.writeFileSync(path.join(dir, 'x-1.0', 'x.tar.gz'), 'a test data file\n');
  const src = path.join(dir, 'src');
  fs.mkdirSync(src);
  await execa('tar', ['-czf', path.join(src, 'x.tar.gz'), 'x-1.0'], { cwd: dir });
  const r = await frontend(src, ['--unpack', './x.tar.gz', '.']);
  t.is(r.exitCode, 0, r.all);
  t.deepEqual(fs.readdirSync(src).sort(), ['setup.py', 'x.tar.gz']);
  t.is(fs.readFileSync(path.join(src, 'x.tar.gz'), 'utf8'), 'a test data file\n');
});

// The front end as a Python without tarfile's data filter runs it (before 3.11.4; bookworm's
// first 3.11.2 builds): the fallback judges each member itself.
function frontendWithoutDataFilter(cwd: string, args: string[]) {
  const code = `import runpy, sys, tarfile\ndel tarfile.data_filter\nsys.argv = ${JSON.stringify([wheelFrontendSource, ...args])}\nrunpy.run_path(sys.argv[0], run_name='__main__')`;
  return execa('python3', ['-S', '-c', code], { cwd, all: true, reject: false, env: { PYTHONDONTWRITEBYTECODE: '1' } });
}

const hasDataFilter = execaSync('python3', ['-c', 'import tarfile; print(hasattr(tarfile, "data_filter"))'], { reject: false }).stdout === 'True';

for (const [how, run] of [['with tarfile\'s data filter', frontend], ['without it (the fallback)', frontendWithoutDataFilter]] as const) {
  const gate = how.startsWith('with') ? unless(hasDataFilter ? undefined : 'this host\'s python3 has no tarfile.data_filter') : withPython;
  gate(`--unpack ${how}: a link inside the tree is kept (hnswlib's python_bindings/setup.py -> ../setup.py); a link out of it, even through another link, is refused`, async (t) => {
    const dir = path.join(work, `links${++serial}`);
    fs.mkdirSync(path.join(dir, 'p-1.0', 'bindings'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'p-1.0', 'setup.py'), 'print("p")\n');
    fs.symlinkSync('../setup.py', path.join(dir, 'p-1.0', 'bindings', 'setup.py'));
    fs.writeFileSync(path.join(dir, 'p-1.0', 'tool'), '#!/bin/sh\n', { mode: 0o4777 });
    fs.chmodSync(path.join(dir, 'p-1.0', 'tool'), 0o4777);
    const src = path.join(dir, 'src');
    fs.mkdirSync(src);
    await execa('tar', ['-czf', path.join(src, 'p.tar.gz'), 'p-1.0'], { cwd: dir });
    const r = await run(src, ['--unpack', './p.tar.gz', '.']);
    t.is(r.exitCode, 0, r.all);
    t.is(fs.readlinkSync(path.join(src, 'bindings', 'setup.py')), '../setup.py');
    t.is(fs.statSync(path.join(src, 'tool')).mode & 0o7777, 0o755, 'no setuid bit, no group or other write');

    // q/d/l -> .. stays inside; q/d/l/l2 -> ../.. is judged where l really leads: outside.
    const bad = path.join(dir, 'bad');
    fs.mkdirSync(path.join(bad, 'q', 'd'), { recursive: true });
    fs.symlinkSync('..', path.join(bad, 'q', 'd', 'l'));
    fs.mkdirSync(path.join(bad, 'x'));
    fs.symlinkSync('../..', path.join(bad, 'x', 'l2'));
    await execa('tar', ['-cf', 'bad.tar', 'q'], { cwd: bad });
    await execa('tar', ['-rf', 'bad.tar', '--transform', 's|^x|q/d/l|', 'x/l2'], { cwd: bad });
    const dest = path.join(bad, 'dest');
    fs.mkdirSync(dest);
    fs.renameSync(path.join(bad, 'bad.tar'), path.join(dest, 'bad.tar'));
    const refused = await run(dest, ['--unpack', './bad.tar', '.']);
    t.not(refused.exitCode, 0);
    t.regex(refused.all, /build-wheel: \.\/bad\.tar has a member (that is a link out of its directory|the data filter refuses).*l2/);
    t.false(fs.existsSync(path.join(bad, 'l2')) || fs.existsSync(path.join(dir, 'l2')), 'nothing was made outside');
  });
}
