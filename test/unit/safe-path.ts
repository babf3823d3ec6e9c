import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { HeldDir, shownPath } from '../../lib/core/held-dir.js';
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

test('a held directory: writes land in the directory opened, whatever is renamed or linked along its path afterwards; links at a name are replaced, never followed', (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-held-'));
  const out = path.join(base, 'out');
  const elsewhere = path.join(base, 'elsewhere');
  fs.mkdirSync(out);
  fs.mkdirSync(elsewhere);
  const canary = path.join(base, 'canary');
  fs.writeFileSync(canary, 'host file\n');
  const held = HeldDir.open(out);
  // The owner swaps --out for a link to another directory after it was opened.
  fs.renameSync(out, path.join(base, 'moved'));
  fs.symlinkSync(elsewhere, out);
  fs.symlinkSync(canary, path.join(base, 'moved', 'w.whl'));
  fs.symlinkSync(canary, path.join(base, 'moved', 'manifest.json'));
  held.put('w.whl', { data: 'wheel' });
  t.is(fs.readFileSync(path.join(base, 'moved', 'w.whl'), 'utf8'), 'wheel');
  t.false(fs.lstatSync(path.join(base, 'moved', 'w.whl')).isSymbolicLink());
  t.deepEqual(fs.readdirSync(elsewhere), []);
  t.is(fs.readFileSync(canary, 'utf8'), 'host file\n');
  t.is(held.read('manifest.json'), undefined, 'a link is not read through');
  held.put('manifest.json', { copyOf: path.join(base, 'moved', 'w.whl') });
  t.is(held.read('manifest.json'), 'wheel');
  t.is(fs.readFileSync(canary, 'utf8'), 'host file\n');
  fs.symlinkSync(elsewhere, path.join(base, 'moved', 'logs'));
  t.throws(() => held.sub('logs'), { message: /logs is not a directory \(a symlink\?\)/ });
  t.throws(() => held.at('../x'));
  t.is(shownPath(`see ${held.at('w.whl')}`), `see ${out}/w.whl`);
  held.close();
  t.deepEqual(fs.readdirSync(path.join(base, 'moved')).sort(), ['logs', 'manifest.json', 'w.whl'], 'no temporary file is left');
  fs.rmSync(base, { recursive: true });
});
