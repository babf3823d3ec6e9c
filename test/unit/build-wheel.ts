// lib/build/build-wheel.py, the one-process PEP 517 front end, run with the host's python3 on a project
// whose backend lives in its own tree (no setuptools or wheel needed). The integration tests run
// it inside real images for setuptools projects.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { needs } from '../helpers/tools.js';
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
