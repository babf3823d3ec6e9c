import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { isInside, resolveInRoot } from '../../lib/host/safe-path.js';
import { MountedBelowError, assertNothingMounted } from '../../lib/host/safe-remove.js';

function tree(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-root-'));
  fs.mkdirSync(path.join(root, 'etc'));
  fs.mkdirSync(path.join(root, 'run/systemd/resolve'), { recursive: true });
  fs.writeFileSync(path.join(root, 'run/systemd/resolve/stub-resolv.conf'), 'x');
  fs.symlinkSync('../run/systemd/resolve/stub-resolv.conf', path.join(root, 'etc/resolv.conf'));
  fs.symlinkSync('/etc/passwd', path.join(root, 'evil-abs'));
  fs.symlinkSync('../../../../../../etc/shadow', path.join(root, 'evil-rel'));
  fs.symlinkSync('/', path.join(root, 'slash'));
  fs.symlinkSync('loop', path.join(root, 'loop'));
  return root;
}

test('symlinks resolve inside the image root, never onto the host', (t) => {
  const root = tree();
  const r = resolveInRoot(root, '/etc/resolv.conf');
  t.is(r.inner, '/run/systemd/resolve/stub-resolv.conf');
  t.is(r.type, 'file');
  t.true(isInside(root, r.host));
  for (const p of ['/evil-abs', '/evil-rel', '/slash/etc/passwd']) {
    const e = resolveInRoot(root, p);
    t.true(isInside(root, e.host), `${p} -> ${e.host}`);
    t.is(e.type, 'missing');
  }
  t.is(resolveInRoot(root, '/slash').inner, '/');
  t.throws(() => resolveInRoot(root, '/loop'), { message: /too many symlinks/ });
  fs.rmSync(root, { recursive: true });
});

test('isInside compares on component boundaries', (t) => {
  t.true(isInside('/a/root', '/a/root/x'));
  t.false(isInside('/a/root', '/a/rootx'));
});

test('removal refuses when anything is mounted at or below the path', (t) => {
  t.throws(() => assertNothingMounted('/proc'), { instanceOf: MountedBelowError });
  t.throws(() => assertNothingMounted('/'), { instanceOf: MountedBelowError });
  t.notThrows(() => assertNothingMounted(fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-empty-'))));
});
