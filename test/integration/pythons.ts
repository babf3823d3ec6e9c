// The board's own Python (issue 17): a venv made in a copy of a sample image, as PYNQ 3 keeps
// one under /usr/local/share, is listed by inspect and chosen with --python for a build (the
// front end, verification and --test-command run under it), run and shell; a path with no
// interpreter is refused naming what the image has.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { copySparse, type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext & { image?: string }>;
hostUnchanged(test);

const venv = '/usr/local/share/test-venv';
const python = `${venv}/bin/python3`;
let image: string | undefined;

test.serial('a venv made in the image (--rw, --system-site-packages) is listed by inspect with its version and tag', async (t) => {
  image = await copySparse(sampleSync('aarch64'), path.join(tmpdir(), 'venv.img'));
  const made = await imgbuild(['run', image, '--rw', '--', 'python3', '-m', 'venv', '--system-site-packages', '--without-pip', venv]);
  t.is(made.exitCode, 0, made.all);
  const r = await imgbuild(['inspect', image]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.stdout, /python: +3\.11 \(\/usr\/bin\/python3 -> \/usr\/bin\/python3\.11, system\)/);
  t.regex(r.stdout, new RegExp(`${python}: 3\\.11 \\(${python} -> /usr/bin/python3\\.11, venv with system site-packages\\), tag cp311-cp311-linux_aarch64`));
  const json = JSON.parse((await imgbuild(['inspect', image, '--json', '--python', python])).stdout) as { python: { path: string; kind: string } };
  t.like(json.python, { path: python, kind: 'venv' });
});

test.serial('--python: the build runs under the venv (front end, import check, --test-command), the manifest names it; run uses it too', async (t) => {
  if (!image) return t.fail('the venv was not made');
  const out = tmpdir();
  const hello = path.resolve('test/fixtures/py/cext-hello');
  const r = await imgbuild([image, '--target', `local:${hello}`, '--python', python, '--test-command', 'python3 -c "import sys, imgbuild_hello; print(\'prefix\', sys.prefix)"', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { image: { interpreter: string }; wheels: { file: string; log: string }[] };
  t.is(m.image.interpreter, python);
  t.is(m.wheels[0]!.file, 'imgbuild_hello-1.0.0-cp311-cp311-linux_aarch64.whl');
  const log = fs.readFileSync(m.wheels[0]!.log, 'utf8');
  t.regex(log, new RegExp(`prefix ${venv}`), 'the test command ran under the venv');
  const run = await imgbuild(['run', image, '--python', python, '--', 'sh', '-c', 'python3 -c "import sys; print(sys.prefix)"; echo "$VIRTUAL_ENV"']);
  t.is(run.exitCode, 0, run.all);
  t.deepEqual(run.stdout.trim().split('\n'), [venv, venv]);
});

test.serial('--python naming no interpreter: exit 3 before anything is built, listing the image\'s interpreters', async (t) => {
  if (!image) return t.fail('the venv was not made');
  const r = await imgbuild([image, '--target', `local:${path.resolve('test/fixtures/py/cext-hello')}`, '--python', '/opt/none/bin/python3', '--out', tmpdir()]);
  t.is(r.exitCode, 3, r.all);
  t.regex(r.stderr, /--python \/opt\/none\/bin\/python3: no Python interpreter there in /);
  t.regex(r.stderr, new RegExp(`the image has: /usr/bin/python3 \\(system, 3\\.11\\), ${python} \\(venv, 3\\.11\\)`));
});
