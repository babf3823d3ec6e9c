import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { PreconditionError } from '../../lib/core/errors.js';
import { chooseInterpreter, describeInterpreter, findInterpreters, parsePyvenvCfg } from '../../lib/session/pythons.js';
import { withPython } from '../../lib/session/session.js';

// A root with the system's Python 3.11 (headers), a PYNQ-style venv on it, a conda prefix with
// its own 3.9, a venv made with --copies (its python3 names no version), and a directory that
// is not an environment.
function fakeRoot(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-pythons-'));
  const file = (p: string, text = '') => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.writeFileSync(path.join(root, p), text);
  };
  const link = (p: string, target: string) => {
    fs.mkdirSync(path.dirname(path.join(root, p)), { recursive: true });
    fs.symlinkSync(target, path.join(root, p));
  };
  file('/usr/bin/python3.11');
  link('/usr/bin/python3', 'python3.11');
  file('/usr/include/python3.11/Python.h');
  file('/usr/local/share/pynq-venv/pyvenv.cfg', 'home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.11.2\n');
  link('/usr/local/share/pynq-venv/bin/python3', 'python');
  link('/usr/local/share/pynq-venv/bin/python', '/usr/bin/python3');
  file('/opt/conda/bin/python3.9');
  link('/opt/conda/bin/python3', 'python3.9');
  fs.mkdirSync(path.join(root, 'opt/conda/conda-meta'));
  file('/opt/copies/pyvenv.cfg', 'home = /usr/bin\ninclude-system-site-packages = false\nversion_info = 3.11.2.final.0\n');
  file('/opt/copies/bin/python3');
  file('/opt/notes/readme.txt');
  return root;
}

test('pyvenv.cfg lines', (t) => {
  t.deepEqual(parsePyvenvCfg('home = /usr/bin\ninclude-system-site-packages = true\nversion = 3.10.12\n'), { home: '/usr/bin', 'include-system-site-packages': 'true', version: '3.10.12' });
});

test('interpreters of an image: the system\'s, a venv (version and headers from its base), conda, a venv of copies (version from pyvenv.cfg)', (t) => {
  const root = fakeRoot();
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  t.like(describeInterpreter(root, '/usr/bin/python3'), { kind: 'system', version: '3.11', abi: 'cp311', executable: '/usr/bin/python3.11', headers: true });
  t.like(describeInterpreter(root, '/usr/local/share/pynq-venv/bin/python3'), { kind: 'venv', version: '3.11', executable: '/usr/bin/python3.11', headers: true, prefix: '/usr/local/share/pynq-venv', systemSitePackages: true });
  t.like(describeInterpreter(root, '/opt/conda/bin/python3'), { kind: 'conda', version: '3.9', abi: 'cp39', headers: false, prefix: '/opt/conda' });
  t.like(describeInterpreter(root, '/opt/copies/bin/python3'), { kind: 'venv', version: '3.11', systemSitePackages: false });
  t.is(describeInterpreter(root, '/opt/notes/bin/python3'), undefined);
  t.deepEqual(findInterpreters(root).map((i) => i.path), ['/usr/bin/python3', '/usr/local/share/pynq-venv/bin/python3', '/opt/conda/bin/python3', '/opt/copies/bin/python3']);
});

test('--python that names no interpreter: exit 3 listing what the image has; a relative path is refused', (t) => {
  const root = fakeRoot();
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  t.throws(() => chooseInterpreter(root, 'pynq.img', '/usr/local/share/nope/bin/python3'), { instanceOf: PreconditionError, message: /--python \/usr\/local\/share\/nope\/bin\/python3: no Python interpreter there in pynq\.img/ });
  const e = t.throws(() => chooseInterpreter(root, 'pynq.img', '/nope'), { instanceOf: PreconditionError });
  t.regex(e.hint ?? '', /\/usr\/local\/share\/pynq-venv\/bin\/python3 \(venv, 3\.11\)/);
  t.throws(() => chooseInterpreter(root, 'pynq.img', 'bin/python3'), { instanceOf: PreconditionError, message: /absolute path inside the image/ });
});

test('a command under --python: python3 is the chosen one, its environment first on PATH, apt and dpkg as the system\'s', (t) => {
  const root = fakeRoot();
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const venv = describeInterpreter(root, '/usr/local/share/pynq-venv/bin/python3')!;
  const r = withPython(venv, ['python3', '-m', 'pip', 'install', 'x']);
  t.deepEqual(r.argv, ['/usr/local/share/pynq-venv/bin/python3', '-m', 'pip', 'install', 'x']);
  t.regex(r.env.PATH!, /^\/usr\/local\/share\/pynq-venv\/bin:\/usr\/local\/sbin:/);
  t.is(r.env.VIRTUAL_ENV, '/usr/local/share/pynq-venv');
  t.deepEqual(withPython(venv, ['sh', '-c', 'python3 -V']).argv, ['sh', '-c', 'python3 -V'], 'a shell finds it on PATH');
  t.deepEqual(withPython(venv, ['apt-get', 'install', 'x']), { argv: ['apt-get', 'install', 'x'], env: {} });
  t.deepEqual(withPython(describeInterpreter(root, '/usr/bin/python3'), ['python3', '-V']), { argv: ['python3', '-V'], env: {} });
  t.is(withPython(describeInterpreter(root, '/opt/conda/bin/python3'), ['python3']).env.CONDA_PREFIX, '/opt/conda');
});
