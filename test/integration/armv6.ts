// An ARMv6 userland (Raspberry Pi OS 32-bit, for the Pi Zero and 1), made from a copy of the armhf
// sample image: its /bin/sh becomes a small ARMv6 program (test/fixtures/armv6-sh) that runs dash,
// so the image reads as ARMv6 as Raspberry Pi OS does. Debian's own armhf libraries stay ARMv7, so
// a C extension linked there is ARMv7 code: verification must refuse it, as the board would stop
// at its first ARMv7 instruction. Wheels and Python's platform are linux_armv6l.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { copySparse, type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

let image: string | undefined;
const pureHello = path.resolve('test/fixtures/py/pure-hello');

test.serial('an armhf image whose /bin/sh is ARMv6 reads as an ARMv6 userland: tag linux_armv6l, Python\'s platform linux-armv6l', async (t) => {
  image = await copySparse(sampleSync('armhf'), path.join(tmpdir(), 'armv6.img'));
  const made = await imgbuild(['run', image, '--rw', '--workspace', path.resolve('test/fixtures/armv6-sh'), '--', 'sh', '-c', 'cp /workspace/sh6 /usr/bin/sh6 && ln -sf sh6 /usr/bin/sh']);
  t.is(made.exitCode, 0, made.all);
  const r = await imgbuild(['inspect', image]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.stdout, /arch: +armhf \(armv6l: an ARMv6 userland, as Raspberry Pi OS for the Pi Zero and 1\)/);
  t.regex(r.stdout, /wheel tag: +cp311-cp311-linux_armv6l/);
  const run = await imgbuild(['run', image, '--', 'python3', '-c', 'import sysconfig; print(sysconfig.get_platform())']);
  t.is(run.exitCode, 0, run.all);
  t.is(run.stdout.trim(), 'linux-armv6l');
});

test.serial('a C extension linked against Debian\'s ARMv7 armhf libraries is refused for the ARMv6 image, naming the ARMv7 code; a pure-Python wheel builds', async (t) => {
  if (!image) return t.fail('the ARMv6 image was not made');
  const out = tmpdir();
  const r = await imgbuild([image, '--target', `local:${path.resolve('test/fixtures/py/cext-hello')}`, '--out', out]);
  t.is(r.exitCode, 1, r.all);
  t.regex(r.stderr, /imgbuild_hello-1\.0\.0-cp311-cp311-linux_armv6l\.whl/);
  t.regex(r.stderr, /is built for ARM v7; the image's userland is ARMv6 \(Raspberry Pi Zero and 1\), where it stops with "Illegal instruction"/);
  t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), [], 'nothing reaches --out');
  const pure = tmpdir();
  const ok = await imgbuild([image, '--target', `local:${pureHello}`, '--out', pure]);
  t.is(ok.exitCode, 0, ok.all);
  t.true(fs.existsSync(path.join(pure, 'imgbuild_pure-1.0-py3-none-any.whl')));
});

test.serial('--with-wheel: a piwheels-style linux_armv6l wheel fits the ARMv6 image; a linux_armv7l one is refused, exit 3', async (t) => {
  if (!image) return t.fail('the ARMv6 image was not made');
  const dir = tmpdir();
  const wheel = async (file: string) => {
    const p = path.join(dir, file);
    const name = file.split('-')[0]!;
    await execa('python3', ['-c', `
import sys, zipfile
with zipfile.ZipFile(sys.argv[1], 'w') as z:
    z.writestr('${name}/__init__.py', 'VALUE = 1\\n')
    z.writestr('${name}-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: ${name}\\nVersion: 1.0\\n')
    z.writestr('${name}-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: false\\nTag: cp311-cp311-linux_armv6l\\n')
    z.writestr('${name}-1.0.dist-info/RECORD', '')
`, p]);
    return p;
  };
  const v6 = await wheel('piv6-1.0-cp311-cp311-linux_armv6l.whl');
  const v7 = await wheel('piv7-1.0-cp311-cp311-linux_armv7l.whl');
  const target = `local:${pureHello}`;
  const ok = await imgbuild([image, '--with-wheel', v6, '--target', target, '--dry-run']);
  t.is(ok.exitCode, 0, ok.all);
  const refused = await imgbuild([image, '--with-wheel', v7, '--target', target, '--dry-run']);
  t.is(refused.exitCode, 3, refused.all);
  t.regex(refused.stderr, /piv7-1\.0-cp311-cp311-linux_armv7l\.whl is for platform linux_armv7l; the image needs linux_armv6l/);
});
