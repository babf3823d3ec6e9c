// Hostile images and odd names. An image's symlinks, device nodes and setuid files, and an
// image file's name, must never reach the host: nothing is written through a symlink, nothing
// is mounted outside the image root, no name is interpreted, no host binfmt entry is touched.
// Images are made here from the cached sample (its ext4 root edited offline); every test
// checks that the host looks exactly the same afterwards.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execa, execaSync } from 'execa';
import { kernelFilesystems } from '../../lib/host/capabilities.js';
import { devString } from '../../lib/host/loop.js';
import { type MountEntry, parseMountinfo } from '../../lib/parse/mountinfo.js';
import { cliPath, copySparse, fsckRoot, type HostContext, hostUnchanged, imgbuild, sampleSync, spawnImgbuild } from '../helpers/cli.js';
import {
  binfmtDir,
  binfmtHex,
  binfmtState,
  Canary,
  climbing,
  fileState,
  fingerprint,
  imgbuildIn,
  onRoot,
  Scratch,
  waitForOutput,
  watchMounts,
  withHostBinfmt,
} from '../helpers/hostile.js';

// These tests are about building: a wheel cache hit would skip the build they mean to exercise.
process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');
const vfat = kernelFilesystems().includes('vfat');

/** Declare a test that cannot run on this host as skipped, with the reason in its title and the log. */
function skip(title: string, why: string): void {
  test.skip(`${title} [skipped: ${why}]`, () => {});
  console.log(`skipped: ${title}: ${why}`);
}

/** A private copy of the sample in a scratch dir, its root edited by `script` (see onRoot). */
async function hostileImage(scratch: Scratch, script: string, env: Record<string, string> = {}): Promise<string> {
  const image = await copySparse(aarch64, scratch.path('hostile.img'));
  await onRoot(image, script, { env });
  return image;
}

/** A listing of the image root's top level (name, type, link target, mode), read through a read-only loop. */
function topLevel(image: string): Promise<string> {
  return onRoot(image, "find . -mindepth 1 -maxdepth 1 -printf '%p %y %l %m\\n' | sort", { readOnly: true });
}

/** Run imgbuild while watching every mount namespace; the run's result plus the stray mounts seen. */
async function watched(canaries: string[], args: string[]) {
  const { result, strays } = await watchMounts(canaries, () => imgbuild(args));
  return { ...result, strays };
}

/** The mount at `target` in a mount table (the last one: it is the one on top). */
function mountAt(entries: MountEntry[], target: string): MountEntry | undefined {
  return entries.filter((e) => e.target === target).at(-1);
}

function hasOptions(entry: MountEntry | undefined, wanted: string[]): boolean {
  const have = (entry?.options ?? '').split(',');
  return wanted.every((w) => have.includes(w));
}

test('the mount watch sees a mount on a canary, and one at a new path, made in a private namespace', async (t) => {
  // The stray-mount check itself must be able to fail.
  const canary = new Canary({ 'file.txt': 'canary\n' });
  try {
    const script = 'mount -t tmpfs imgbuild-test "$1" && mount -t tmpfs imgbuild-test /mnt && sleep 0.5';
    const { strays } = await watchMounts([canary.dir], () => execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script, 'sh', canary.dir]));
    t.true(strays.some((s) => s.startsWith(`${canary.dir} (tmpfs`)), strays.join('\n'));
    t.true(strays.some((s) => s.startsWith('/mnt (tmpfs')), strays.join('\n'));
  } finally {
    canary.remove();
  }
});

const canaryResolv = 'nameserver 203.0.113.66\n# imgbuild canary: must never be read into or written from a chroot\n';
const hostResolvServer = /^nameserver\s+\S+/m.exec(fs.readFileSync('/etc/resolv.conf', 'utf8'))?.[0];

// ---- 1a. /etc/resolv.conf a symlink to a host file ----

const writeResolv = 'cat /etc/resolv.conf; echo "cat=$?"; echo pwned > /etc/resolv.conf; echo "write=$?"; echo pwned >> /etc/resolv.conf; cat /etc/resolv.conf; exit 0';

for (const kind of ['absolute', 'relative'] as const) {
  test(`/etc/resolv.conf ${kind === 'absolute' ? 'an' : 'a'} ${kind} symlink to a host file: run and run --rw neither read nor write it`, async (t) => {
    const canary = new Canary({ 'resolv-canary': canaryResolv });
    const scratch = new Scratch();
    try {
      const link = kind === 'absolute' ? canary.path('resolv-canary') : climbing(canary.path('resolv-canary'));
      const image = await hostileImage(scratch, 'rm -f etc/resolv.conf; ln -s "$LINK" etc/resolv.conf', { LINK: link });
      const before = canary.fingerprint();
      const hostResolv = fileState('/etc/resolv.conf');
      for (const mode of [[], ['--rw']]) {
        const r = await watched([canary.dir], ['run', image, ...mode, '--', 'sh', '-c', writeResolv]);
        t.is(r.exitCode, 0, r.all);
        t.false(r.stdout.includes('203.0.113.66'), `the host file's content reached the chroot: ${r.stdout}`);
        t.deepEqual(r.strays, [], `mounted outside the image root (${mode.join(' ')})`);
        t.deepEqual(canary.fingerprint(), before, `the host file changed (${mode.join(' ')})`);
        t.is(fileState('/etc/resolv.conf'), hostResolv, "the host's /etc/resolv.conf changed");
      }
      t.is((await onRoot(image, 'readlink etc/resolv.conf', { readOnly: true })).trim(), link, "the image's own link is as before");
      t.is(await fsckRoot(image), 0);
    } finally {
      scratch.remove();
      canary.remove();
    }
  });
}

test('/etc/resolv.conf a symlink to a host path that also exists in the image: the image side is used, the host file never', async (t) => {
  const canary = new Canary({ 'resolv-canary': canaryResolv });
  const scratch = new Scratch();
  try {
    const link = canary.path('resolv-canary');
    // The same directory inside the image, so the link resolves (inside the root) to a real place.
    const image = await hostileImage(scratch, 'mkdir -p "./$DIR"; echo image-side > "./$DIR/image-side"; rm -f etc/resolv.conf; ln -s "$LINK" etc/resolv.conf', {
      DIR: canary.dir,
      LINK: link,
    });
    const before = canary.fingerprint();
    const imageTop = await topLevel(image);
    for (const mode of [[], ['--rw']]) {
      const r = await watched([canary.dir], ['run', image, ...mode, '--', 'sh', '-c', writeResolv]);
      t.is(r.exitCode, 0, r.all);
      t.false(r.stdout.includes('203.0.113.66'), r.stdout);
      if (hostResolvServer) t.true(r.stdout.includes(hostResolvServer), `the chroot gets the host's resolver through the bind: ${r.stdout}`);
      t.regex(r.stdout, /write=[1-9]/, 'the provided resolv.conf is read-only');
      t.deepEqual(r.strays, []);
      t.deepEqual(canary.fingerprint(), before);
    }
    // --rw: the placeholder made in the image for the bind is gone again; the link is unchanged.
    t.is(await onRoot(image, 'ls -A "./$DIR"; readlink etc/resolv.conf', { env: { DIR: canary.dir }, readOnly: true }), `image-side\n${link}`);
    t.is(await topLevel(image), imageTop);
    t.is(await fsckRoot(image), 0);
  } finally {
    scratch.remove();
    canary.remove();
  }
});

// imgbuild resolves the link inside the image and does not bind over it (nothing there), but a
// process in the chroot follows it: the chroot's /proc is the session's PID namespace, whose PID 1
// is the holder, and the holder's root is the host's /. So the image's own link, and any ordinary
// write to /etc/resolv.conf in the chroot, reach the host file.
test("/etc/resolv.conf a symlink through /proc/1/root to a host file: run and run --rw neither read nor write it", async (t) => {
  const canary = new Canary({ 'resolv-canary': canaryResolv });
  const scratch = new Scratch();
  try {
    const link = `/proc/1/root${canary.path('resolv-canary')}`;
    const image = await hostileImage(scratch, 'rm -f etc/resolv.conf; ln -s "$LINK" etc/resolv.conf', { LINK: link });
    const before = canary.fingerprint();
    for (const mode of [[], ['--rw']]) {
      const r = await watched([canary.dir], ['run', image, ...mode, '--', 'sh', '-c', writeResolv]);
      t.is(r.exitCode, 0, r.all);
      t.deepEqual(r.strays, []);
      t.false(r.stdout.includes('203.0.113.66'), `the host file's content reached the chroot: ${r.stdout}`);
      t.deepEqual(canary.fingerprint(), before, `the host file changed (${mode.join(' ')}): ${fs.readFileSync(canary.path('resolv-canary'), 'utf8')}`);
    }
  } finally {
    scratch.remove();
    canary.remove();
  }
});

test('/etc/resolv.conf a symlink loop: a clear refusal or a session without it, nothing written', async (t) => {
  const scratch = new Scratch();
  try {
    const image = await hostileImage(scratch, 'rm -f etc/resolv.conf; ln -s resolv.conf etc/resolv.conf');
    for (const mode of [[], ['--rw']]) {
      const r = await watched([], ['run', image, ...mode, '--', 'true']);
      t.deepEqual(r.strays, []);
      if (r.exitCode === 3) t.regex(r.stderr, /\/etc\/resolv\.conf/, r.all);
      else t.is(r.exitCode, 0, r.all);
    }
    t.is((await onRoot(image, 'readlink etc/resolv.conf', { readOnly: true })).trim(), 'resolv.conf');
  } finally {
    scratch.remove();
  }
});

// ---- 1b. /etc (and /usr/sbin, home of policy-rc.d) a symlink to a host directory ----

const dirCases: { dir: string; files: Record<string, string>; script: string; warning: RegExp }[] = [
  {
    dir: 'etc',
    files: {
      'etc/resolv.conf': canaryResolv,
      'etc/hostname': 'canary-hostname\n',
      'etc/passwd': 'canary:x:0:0:canary:/:/bin/sh\n',
      'etc/os-release': 'ID=canary\nNAME="canary"\n',
      'etc/policy-rc.d': '#!/bin/sh\necho canary-policy\nexit 0\n',
    },
    script:
      'cat /etc/resolv.conf /etc/hostname /etc/passwd /etc/os-release; for f in resolv.conf hostname passwd os-release policy-rc.d new-file; do echo pwned > /etc/$f; done; mkdir /etc/new-dir; rm -f /etc/hostname /etc/passwd; ln -s /x /etc/new-link; exit 0',
    warning: /\/etc\/resolv\.conf not provided/,
  },
  {
    dir: 'usr/sbin',
    files: { 'sbin/policy-rc.d': '#!/bin/sh\necho canary-policy\nexit 0\n', 'sbin/canary': 'canary\n' },
    script: '/usr/sbin/policy-rc.d; echo "policy=$?"; cat /usr/sbin/canary; echo pwned > /usr/sbin/policy-rc.d; echo pwned > /usr/sbin/new-file; rm -f /usr/sbin/canary; exit 0',
    warning: /\/usr\/sbin\/policy-rc\.d not provided/,
  },
];

for (const c of dirCases) {
  for (const kind of ['absolute', 'relative'] as const) {
    test(`/${c.dir} ${kind === 'absolute' ? 'an' : 'a'} ${kind} symlink to a host directory: run, run --rw and inspect never read or write it`, async (t) => {
      const canary = new Canary(c.files);
      const scratch = new Scratch();
      try {
        const target = canary.path(path.basename(c.dir));
        const link = kind === 'absolute' ? target : climbing(target);
        const image = await hostileImage(scratch, 'mv "$DIR" "$DIR.hostile-orig"; ln -s "$LINK" "$DIR"', { DIR: c.dir, LINK: link });
        const before = canary.fingerprint();
        const hostResolv = fileState('/etc/resolv.conf');
        const imageTop = await topLevel(image);
        for (const mode of [[], ['--rw']]) {
          const r = await watched([canary.dir], ['run', image, ...mode, '--', 'sh', '-c', c.script]);
          // Either it works (the file is simply not provided, with a warning) or it stops with a clear error.
          if (r.exitCode === 3) t.true(r.stderr.includes(`/${c.dir}`), r.all);
          else {
            t.is(r.exitCode, 0, r.all);
            t.regex(r.stderr, c.warning, r.all);
          }
          t.notRegex(r.stdout, /canary|203\.0\.113\.66/, 'host content reached the chroot');
          t.deepEqual(r.strays, []);
          t.deepEqual(canary.fingerprint(), before, `the host directory changed (${mode.join(' ')})`);
          t.is(fileState('/etc/resolv.conf'), hostResolv);
        }
        const i = await watched([canary.dir], ['inspect', image, '--json']);
        t.is(i.exitCode, 0, i.all);
        t.is(JSON.parse(i.stdout).os.ID, 'debian', 'inspect read the host file instead of the image');
        t.deepEqual(i.strays, []);
        t.deepEqual(canary.fingerprint(), before);
        t.is(await topLevel(image), imageTop);
        t.is((await onRoot(image, 'readlink "$DIR"', { env: { DIR: c.dir }, readOnly: true })).trim(), link);
        t.is(await fsckRoot(image), 0);
      } finally {
        scratch.remove();
        canary.remove();
      }
    });
  }
}

test('/usr a symlink out of the image: not taken for a root, exit 3, nothing touched', async (t) => {
  const canary = new Canary({ 'usr/bin/sh': '#!/bin/sh\necho canary\n', 'usr/lib/os-release': 'ID=canary\n' });
  const scratch = new Scratch();
  try {
    const image = await hostileImage(scratch, 'mv usr usr.hostile-orig; ln -s "$LINK" usr', { LINK: canary.path('usr') });
    const before = canary.fingerprint();
    for (const args of [['inspect', image], ['run', image, '--', 'true'], ['run', image, '--rw', '--', 'true']]) {
      const r = await watched([canary.dir], args);
      t.is(r.exitCode, 3, r.all);
      t.regex(r.stderr, /no Linux root/, r.all);
      t.deepEqual(r.strays, []);
    }
    t.deepEqual(canary.fingerprint(), before);
  } finally {
    scratch.remove();
    canary.remove();
  }
});

// ---- 1c. mount points that are symlinks out of the image ----

const mountpoints = ['/proc', '/sys', '/dev', '/run', '/tmp', '/workspace'];

async function refusesSymlinkedMountpoint(t: ExecutionContext<HostContext>, mp: string): Promise<void> {
  const base = mp.slice(1);
  const canary = new Canary({ [`${base}/canary.txt`]: `canary for ${mp}\n`, [`${base}/sub/deeper.txt`]: 'deeper\n' });
  const scratch = new Scratch();
  try {
    const ws = scratch.path('ws');
    fs.mkdirSync(ws);
    fs.writeFileSync(path.join(ws, 'hello.txt'), 'workspace\n');
    const image = await copySparse(aarch64, scratch.path('hostile.img'));
    const before = canary.fingerprint();
    const wsBefore = fingerprint(ws);
    for (const kind of ['absolute', 'relative'] as const) {
      const link = kind === 'absolute' ? canary.path(base) : climbing(canary.path(base));
      await onRoot(image, 'if [ -e "$MP" ] && [ ! -L "$MP" ]; then mv "$MP" "$MP.hostile-orig"; fi; rm -f "$MP"; ln -s "$LINK" "$MP"', { env: { MP: base, LINK: link } });
      const imageTop = await topLevel(image);
      for (const mode of [[], ['--rw']]) {
        const what = `${kind} link, ${mode.join(' ') || 'overlay'}`;
        const r = await watched([canary.dir], ['run', image, ...mode, '--workspace', ws, '--', 'true']);
        t.is(r.exitCode, 3, `${what}: ${r.all}`);
        t.true(r.stderr.includes(`${mp} in the image is a symlink`), `${what}: the message names ${mp}: ${r.stderr}`);
        t.regex(r.stderr, /hint: /, what);
        t.deepEqual(r.strays, [], `${what}: mounted outside the image root`);
        t.deepEqual(canary.fingerprint(), before, `${what}: the host directory changed`);
        t.deepEqual(fingerprint(ws), wsBefore, `${what}: the workspace changed`);
        t.is(await topLevel(image), imageTop, `${what}: the image root changed`);
      }
    }
    t.is(await fsckRoot(image), 0);
  } finally {
    scratch.remove();
    canary.remove();
  }
}

// ---- 1d. a build that leaves links where its wheels belong ----

// An in-tree PEP 517 backend (no setuptools): it writes a wheel, then, as the file "mode" in the
// project says, replaces the wheel directory or the wheel with a symlink to the path in "target".
// Inside the chroot that path does not exist; on the host it is a canary directory or file.
const linkingBackend = `import os, zipfile
def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    name = 'evil-1.0-py3-none-any.whl'
    wheel = os.path.join(wheel_directory, name)
    with zipfile.ZipFile(wheel, 'w') as z:
        z.writestr('evil/__init__.py', '')
        z.writestr('evil-1.0.dist-info/METADATA', 'Metadata-Version: 2.1\\nName: evil\\nVersion: 1.0\\n')
        z.writestr('evil-1.0.dist-info/WHEEL', 'Wheel-Version: 1.0\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n')
        z.writestr('evil-1.0.dist-info/RECORD', '')
    mode, target = open('mode').read().strip(), open('target').read().strip()
    if mode == 'dir':
        os.rename(wheel_directory, wheel_directory + '.real')
        os.symlink(target, wheel_directory)
    else:
        os.remove(wheel)
        os.symlink(target, wheel)
    return name
`;

for (const mode of ['dir', 'file'] as const) {
  test(`a build that turns ${mode === 'dir' ? 'its wheel directory' : 'its wheel'} into a symlink to the host: refused, the host ${mode === 'dir' ? 'directory' : 'file'} untouched, nothing reported`, async (t) => {
    const canary = new Canary({ 'evil-1.0-py3-none-any.whl': 'not a wheel: a host file\n' });
    const scratch = new Scratch();
    try {
      const project = scratch.path('evil');
      fs.mkdirSync(project);
      fs.writeFileSync(path.join(project, 'pyproject.toml'), '[build-system]\nrequires = []\nbuild-backend = "evil_backend"\nbackend-path = ["."]\n');
      fs.writeFileSync(path.join(project, 'evil_backend.py'), linkingBackend);
      fs.writeFileSync(path.join(project, 'mode'), mode);
      fs.writeFileSync(path.join(project, 'target'), mode === 'dir' ? canary.dir : canary.path('evil-1.0-py3-none-any.whl'));
      const out = scratch.path('out');
      const before = canary.fingerprint();
      const r = await watched([canary.dir], [aarch64, '-t', `local:${project}`, '--out', out, '--accel', 'cross']);
      t.is(r.exitCode, 1, r.all);
      t.regex(r.stderr, mode === 'dir' ? /dist\/ in the build tree is not a plain directory/ : /dist\/evil-1\.0-py3-none-any\.whl is not a regular file/);
      t.deepEqual(r.strays, []);
      t.deepEqual(canary.fingerprint(), before, 'the host side was not read into --out, renamed or written');
      t.deepEqual(fs.existsSync(out) ? fs.readdirSync(out).filter((f) => f.endsWith('.whl')) : [], []);
    } finally {
      scratch.remove();
      canary.remove();
    }
  });
}

test('--rw on an image without /proc, /sys, /dev, /run and /tmp: created for the session, removed afterwards, the root as it was', async (t) => {
  const scratch = new Scratch();
  try {
    const image = await hostileImage(scratch, 'rm -rf -- proc sys dev run tmp');
    const before = await topLevel(image);
    t.notRegex(before, /^\.\/(proc|sys|dev|run|tmp) /m);
    const r = await watched([], ['run', image, '--rw', '--', 'sh', '-c', 'test -r /proc/self/status && test -d /sys/kernel && test -c /dev/null && test -d /run/lock && test -d /tmp && echo inside-ok']);
    t.is(r.exitCode, 0, r.all);
    t.regex(r.stdout, /inside-ok/);
    t.deepEqual(r.strays, []);
    t.is(await topLevel(image), before, 'the directories made for the mounts are gone again');
    t.is(await fsckRoot(image), 0);
  } finally {
    scratch.remove();
  }
});

for (const mp of mountpoints) {
  test(`${mp} a symlink (absolute and relative) to a host directory: refused, exit 3, the message names ${mp}, nothing mounted`, (t) => refusesSymlinkedMountpoint(t, mp));
}

if (vfat) {
  test('/boot a symlink (absolute and relative) to a host directory: refused, exit 3, the message names /boot, nothing mounted', (t) => refusesSymlinkedMountpoint(t, '/boot'));
} else {
  skip('/boot a symlink to a host directory: refused', 'this kernel has no vfat, so imgbuild never mounts the boot partition and never reaches /boot');
  test('/boot a symlink to a host directory without vfat: the boot partition is not mounted (warning), nothing mounted at the host directory', async (t) => {
    const canary = new Canary({ 'boot/config.txt': 'canary\n' });
    const scratch = new Scratch();
    try {
      const image = await hostileImage(scratch, 'mv boot boot.hostile-orig; ln -s "$LINK" boot', { LINK: canary.path('boot') });
      const before = canary.fingerprint();
      for (const mode of [[], ['--rw']]) {
        const r = await watched([canary.dir], ['run', image, ...mode, '--', 'sh', '-c', 'ls /boot/ 2>&1; echo pwned > /boot/config.txt; exit 0']);
        t.is(r.exitCode, 0, r.all);
        t.regex(r.stderr, /boot partition 1 \(vfat\) not mounted at \/boot/);
        t.notRegex(r.stdout, /config\.txt/);
        t.deepEqual(r.strays, []);
        t.deepEqual(canary.fingerprint(), before);
      }
    } finally {
      scratch.remove();
      canary.remove();
    }
  });
}

// ---- 1d. device nodes and setuid files ----

const hostDisk = devString(fs.statSync('/').dev);
const hostDiskKnown = fs.existsSync(`/sys/dev/block/${hostDisk}`);

/** A static host-native program printing "uid euid", for setuid checks (needs gcc and a static libc). */
const tools = new Scratch('imgbuild-hostile-tools-');
test.after.always(() => tools.remove());
const euidProgram = (() => {
  const src = tools.path('euid.c');
  const out = tools.path('euid');
  fs.writeFileSync(src, '#include <stdio.h>\n#include <unistd.h>\nint main(void) { printf("%d %d\\n", (int)getuid(), (int)geteuid()); return 0; }\n');
  const r = execaSync('gcc', ['-static', '-O2', '-o', out, src], { reject: false, all: true });
  return r.exitCode === 0 ? out : undefined;
})();

/** The image root with /opt/hostile/{null (c 1:3), disk (b = the host's root disk), euid (setuid root)}, all mode 0666/4755. */
function nodesImage(scratch: Scratch): Promise<string> {
  const [major, minor] = hostDisk.split(':');
  const script = [
    'mkdir -p opt/hostile',
    'mknod -m 0666 opt/hostile/null c 1 3',
    'mknod -m 0666 opt/hostile/disk b "$MAJOR" "$MINOR"',
    ...(euidProgram ? ['cp "$PROGRAM" opt/hostile/euid', 'chown 0:0 opt/hostile/euid', 'chmod 4755 opt/hostile/euid'] : []),
  ].join('\n');
  return hostileImage(scratch, script, { MAJOR: major!, MINOR: minor!, ...(euidProgram ? { PROGRAM: euidProgram } : {}) });
}

// Only opens the disk node for reading (never writes), as root and as nobody; prints each exit
// code with its error, then the mount table.
const probeNodes = [
  'for who in root nobody; do',
  '  if [ $who = root ]; then as=""; else as="setpriv --reuid=65534 --regid=65534 --clear-groups"; fi',
  '  err=$($as dd if=/opt/hostile/disk of=/dev/null bs=512 count=1 2>&1 >/dev/null); echo "disk-$who=$? $err" | head -1',
  '  err=$($as sh -c "echo x > /opt/hostile/null" 2>&1); echo "null-$who=$? $err" | head -1',
  'done',
  'echo ---',
  'cat /proc/self/mountinfo',
].join('\n');

/** "disk-root=1 dd: failed to open ...: Permission denied" lines, by name. */
function nodeResults(stdout: string): Record<string, { code: number; error: string }> {
  const out: Record<string, { code: number; error: string }> = {};
  for (const m of stdout.matchAll(/^(disk|null)-(root|nobody)=(\d+) ?(.*)$/gm)) out[`${m[1]}-${m[2]}`] = { code: Number(m[3]), error: m[4] ?? '' };
  return out;
}

async function imageNodesInert(t: ExecutionContext<HostContext>, mode: string[]): Promise<void> {
  const scratch = new Scratch();
  try {
    const image = await nodesImage(scratch);
    const r = await imgbuild(['run', image, ...mode, '--', 'sh', '-c', probeNodes]);
    t.is(r.exitCode, 0, r.all);
    const [head, table] = r.stdout.split('---\n');
    const results = nodeResults(head ?? '');
    t.deepEqual(Object.keys(results).sort(), ['disk-nobody', 'disk-root', 'null-nobody', 'null-root'], head);
    // The char node (1:3) is what nodev alone decides; the disk node may also be refused by a
    // devices cgroup (EPERM, "Operation not permitted") on some hosts.
    for (const [what, { code, error }] of Object.entries(results)) {
      t.not(code, 0, `${what}: a device node shipped in the image opened in the chroot`);
      t.regex(error, /Permission denied|Operation not permitted/, what);
    }
    const root = mountAt(parseMountinfo(table ?? ''), '/');
    t.true(hasOptions(root, ['nodev']), `the chroot's root is mounted nodev: ${root?.fstype} ${root?.options}`);
  } finally {
    scratch.remove();
  }
}

if (!hostDiskKnown) skip('device nodes in the image', `cannot tell the host disk's device number (/ is on ${hostDisk})`);
else {
  test("--rw: the image's device nodes (null, the host's disk) cannot be opened in the chroot; its root is nodev", (t) => imageNodesInert(t, ['--rw']));
  // The default session's root is an overlay mounted without nodev: overlayfs opens device nodes
  // by its own mount's flags, so the lower layer's nodev does not protect them.
  test("run (overlay): the image's device nodes cannot be opened in the chroot; its root is nodev", (t) => imageNodesInert(t, []));
}

if (!euidProgram) skip('a setuid-root program in the workspace keeps its caller', 'no gcc with a static libc on this host to make a native setuid test program');
else {
  test('the workspace is nosuid,nodev: a setuid-root program there does not raise nobody, a device node there cannot be opened', async (t) => {
    const scratch = new Scratch();
    try {
      const image = await nodesImage(scratch);
      const ws = scratch.path('ws');
      fs.mkdirSync(ws);
      fs.copyFileSync(euidProgram, path.join(ws, 'euid'));
      fs.chmodSync(path.join(ws, 'euid'), 0o4755);
      await execa('mknod', ['-m', '0666', path.join(ws, 'null'), 'c', '1', '3']);
      const asNobody = 'setpriv --reuid=65534 --regid=65534 --clear-groups';
      const script = [
        `echo "ws: $(${asNobody} /workspace/euid)"`,
        `echo "image: $(${asNobody} /opt/hostile/euid)"`,
        'sh -c "echo x > /workspace/null" 2>/dev/null; echo "null=$?"',
        'echo ---',
        'cat /proc/self/mountinfo',
      ].join('\n');
      // --privileged: the box's no_new_privs is off, so what stops the setuid program is the
      // workspace's nosuid alone, and the control below shows a setuid program can work there.
      const r = await imgbuild(['run', image, '--rw', '--privileged', '--workspace', ws, '--', 'sh', '-c', script]);
      t.is(r.exitCode, 0, r.all);
      const [head, table] = r.stdout.split('---\n');
      const mounts = parseMountinfo(table ?? '');
      const wsMount = mountAt(mounts, '/workspace');
      t.true(hasOptions(wsMount, ['nosuid', 'nodev']), `/workspace: ${wsMount?.options}`);
      t.regex(head ?? '', /^ws: 65534 65534$/m, 'setuid took effect in the workspace');
      t.regex(head ?? '', /^null=[1-9]/m, 'a device node in the workspace opened');
      // Control: the same program on a mount without nosuid does take effect, so the check above can fail.
      const root = mountAt(mounts, '/');
      t.regex(head ?? '', hasOptions(root, ['nosuid']) ? /^image: 65534 65534$/m : /^image: 65534 0$/m, `root: ${root?.options}`);
      // In the box (the default), no_new_privs: no setuid program raises anyone, the image's own either.
      const boxed = await imgbuild(['run', image, '--rw', '--workspace', ws, '--', 'sh', '-c', script]);
      t.is(boxed.exitCode, 0, boxed.all);
      t.regex(boxed.stdout, /^ws: 65534 65534$/m);
      t.regex(boxed.stdout, /^image: 65534 65534$/m, 'no_new_privs: the image\'s setuid program does not raise nobody');
    } finally {
      scratch.remove();
    }
  });
}

if (!hostDiskKnown || !euidProgram) skip('imgbuild mount of a hostile image', 'needs the host disk number and a static setuid test program');
else {
  // `imgbuild mount` puts the image in the host's namespace for work by hand: its device nodes and
  // setuid files are then reachable by every local user unless the mount is nodev,nosuid.
  test('imgbuild mount: the mounted root is nodev,nosuid, its nodes and setuid files are inert on the host', async (t) => {
    const scratch = new Scratch();
    const dir = scratch.path('mnt');
    fs.mkdirSync(dir);
    // Reachable by nobody, as a mount point chosen by a user would be.
    fs.chmodSync(scratch.dir, 0o755);
    try {
      const image = await nodesImage(scratch);
      const m = await imgbuild(['mount', image, dir]);
      t.is(m.exitCode, 0, m.all);
      try {
        const open = await execa('sh', ['-c', 'echo x > "$1"', 'sh', path.join(dir, 'opt/hostile/null')], { reject: false });
        t.not(open.exitCode, 0, "the image's device node opened on the host");
        const euid = await execa('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', path.join(dir, 'opt/hostile/euid')], { reject: false });
        t.is(euid.stdout.trim(), '65534 65534', "the image's setuid-root program raised nobody on the host");
        const entry = parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).filter((e) => e.target === dir).at(-1);
        t.true(hasOptions(entry, ['nodev', 'nosuid']), `${dir}: ${entry?.options}`);
      } finally {
        const u = await imgbuild(['umount', dir]);
        t.is(u.exitCode, 0, u.all);
      }
    } finally {
      scratch.remove();
    }
  });
}

// ---- 2. odd image names ----

const tag = crypto.randomBytes(4).toString('hex');
const pwned = `imgbuild-pwned-${tag}`;
const oddNames = [
  'with space.img',
  '-img.img',
  'new\nline.img',
  `$(cd;touch ${pwned}).img`,
  `\`cd;touch ${pwned}\`.img`,
  'a;b|c&.img',
  `x;cd;touch ${pwned};.img`,
  'img,offset=0.img',
  `q'uo"te\\.img`,
  'tab\tglob*?[x].img',
];
const pwnedPlaces = [...new Set([os.homedir(), '/root', process.cwd(), '/', '/tmp', '/var/tmp', '/run', '/run/imgbuild'])];

/** Does the CLI take the image after `--`? (inspect -- PATH reaching "image not found" says yes.) */
const dashDashImage = (() => {
  const r = execaSync('node', [cliPath, 'inspect', '--', `/nonexistent-imgbuild-probe-${tag}.img`], { reject: false, all: true });
  return r.exitCode === 3 && /image not found/.test(String(r.all)) ? undefined : `inspect -- IMAGE exits ${r.exitCode}: ${String(r.all).split('\n').at(-1)}`;
})();

const names = new Scratch('imgbuild-names-');
let current = '';
test.before(async () => {
  current = await copySparse(aarch64, names.path('sample.img'));
});
test.after.always(() => names.remove());

/** Give the shared copy this name for the test (a rename: no copying). */
function renameTo(name: string): string {
  const to = names.path(name);
  fs.renameSync(current, to);
  current = to;
  return to;
}

for (const name of oddNames) {
  test(`an image named ${JSON.stringify(name)}: inspect and run work, nothing in the name is interpreted`, async (t) => {
    const image = renameTo(name);
    const rel = `./${name}`;
    const inspections = [
      ['inspect', rel, '--json'],
      ['inspect', image, '--json'],
      ...(name.startsWith('-') && !dashDashImage ? [['inspect', '--json', '--', name]] : []),
    ];
    for (const args of inspections) {
      const r = await imgbuildIn(names.dir, args);
      t.is(r.exitCode, 0, `${JSON.stringify(args)}: ${r.all}`);
      if (r.exitCode === 0) {
        const facts = JSON.parse(r.stdout);
        t.is(facts.arch, 'aarch64');
        t.is(facts.image, image, 'the image is named exactly, as one argument');
      }
    }
    for (const args of [['run', rel, '--', 'cat', '/etc/hostname'], ['run', image, '--', 'true']]) {
      const r = await imgbuildIn(names.dir, args);
      t.is(r.exitCode, 0, `${JSON.stringify(args)}: ${r.all}`);
      if (args.includes('cat')) t.is(r.stdout.trim(), 'imgbuild-sample');
    }
    if (name.startsWith('-')) {
      // Bare, it is an option to the CLI: a usage error that touches nothing.
      const r = await imgbuildIn(names.dir, ['inspect', name]);
      t.is(r.exitCode, 2, r.all);
    }
    for (const dir of [...pwnedPlaces, names.dir]) t.false(fs.existsSync(path.join(dir, pwned)), `${dir}/${pwned} appeared: the name was run by a shell`);
    t.deepEqual(fs.readdirSync(names.dir), [name], 'nothing else appeared next to the image');
  });
}

if (dashDashImage) skip('an image named "-img.img" passed after --', `the CLI does not take the image after -- (${dashDashImage})`);

// ---- 3. binfmt_misc entries on the host ----

const qemu = '/usr/bin/qemu-aarch64-static';
const aarch64Magic = '\\x7f\\x45\\x4c\\x46\\x02\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\xb7\\x00';
const aarch64Mask = '\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff';

const canaryMagic = Buffer.from('\0IMGBUILD-CANARY\0');
const canaryEntries: Record<string, string> = {
  'imgbuild-test-canary-F': `:imgbuild-test-canary-F:M::${binfmtHex('\0IMGBUILD-CANARY-F\0')}::/bin/false:F`,
  'imgbuild-test-canary': `:imgbuild-test-canary:M:4:${binfmtHex(canaryMagic)}:${binfmtHex(Buffer.alloc(canaryMagic.length, 0xff))}:/bin/false:`,
  'imgbuild-test-canary-E': ':imgbuild-test-canary-E:E::imgbuildcanary::/bin/false:',
};

/** run uname -m, then look at the host's entries while the session is still up, then end it. */
async function sessionEntries(t: ExecutionContext<HostContext>, verbose = false) {
  const child = spawnImgbuild([...(verbose ? ['--verbose'] : []), 'run', aarch64, '--', 'sh', '-c', 'uname -m; exec sleep 613']);
  await waitForOutput(child, /^aarch64$/m);
  const during = binfmtState();
  child.kill('SIGTERM');
  const r = await child;
  t.is(r.exitCode, 130, r.all);
  t.regex(r.stdout, /^aarch64$/m, r.all);
  return { during, output: r.all };
}

const binfmtWhy = !fs.existsSync(qemu) ? `${qemu} is not installed` : !kernelFilesystems().includes('binfmt_misc') ? 'this kernel has no binfmt_misc' : undefined;
if (binfmtWhy) skip('binfmt entries on the host', binfmtWhy);
else {
  test('binfmt: host entries with and without F are untouched; imgbuild adds its own entry for the session and removes exactly that', async (t) => {
    await withHostBinfmt(canaryEntries, async () => {
      const before = binfmtState();
      const { during, output } = await sessionEntries(t, true);
      const added = Object.keys(during).filter((n) => !(n in before));
      t.is(added.length, 1, `entries added during the session: ${added.join(', ')}`);
      t.regex(added[0] ?? '', /^imgbuild-aarch64-/);
      t.regex(during[added[0]!] ?? '', new RegExp(`interpreter ${qemu}[\\s\\S]*flags: F`));
      t.regex(output, /binfmt: registered imgbuild-aarch64-/);
      for (const name of Object.keys(before)) t.is(during[name], before[name], `${name} changed during the session`);
      t.deepEqual(binfmtState(), before, 'the entries are exactly as before');
      // A plain run too (not interrupted).
      const r = await imgbuild(['run', aarch64, '--', 'uname', '-m']);
      t.is(r.exitCode, 0, r.all);
      t.is(r.stdout.trim(), 'aarch64');
      t.deepEqual(binfmtState(), before);
    });
  });

  test('binfmt: an enabled F-flag qemu-aarch64 entry on the host is reused and left untouched', async (t) => {
    const host = { 'imgbuild-test-qemu-aarch64': `:imgbuild-test-qemu-aarch64:M::${aarch64Magic}:${aarch64Mask}:${qemu}:F` };
    await withHostBinfmt({ ...canaryEntries, ...host }, async () => {
      const before = binfmtState();
      t.regex(before['imgbuild-test-qemu-aarch64'] ?? '', /flags: F/);
      const { during, output } = await sessionEntries(t, true);
      t.deepEqual(during, before, 'no entry was added or changed during the session');
      t.regex(output, /binfmt: reusing host entry imgbuild-test-qemu-aarch64/);
      t.deepEqual(binfmtState(), before);
    });
  });

  test('binfmt: a qemu-aarch64 entry without F (and a disabled one with F) is left untouched; imgbuild uses its own', async (t) => {
    const host = {
      'imgbuild-test-qemu-aarch64-noF': `:imgbuild-test-qemu-aarch64-noF:M::${aarch64Magic}:${aarch64Mask}:${qemu}:`,
      'imgbuild-test-qemu-aarch64-off': `:imgbuild-test-qemu-aarch64-off:M::${aarch64Magic}:${aarch64Mask}:${qemu}:F`,
    };
    await withHostBinfmt({ ...canaryEntries, ...host }, async () => {
      fs.writeFileSync(path.join(binfmtDir, 'imgbuild-test-qemu-aarch64-off'), '0');
      const before = binfmtState();
      t.regex(before['imgbuild-test-qemu-aarch64-off'] ?? '', /^disabled/);
      const { during, output } = await sessionEntries(t, true);
      const added = Object.keys(during).filter((n) => !(n in before));
      t.is(added.length, 1, `entries added during the session: ${added.join(', ')}`);
      t.regex(added[0] ?? '', /^imgbuild-aarch64-/);
      t.regex(output, /binfmt: registered imgbuild-aarch64-\S+ .* because entry imgbuild-test-qemu-aarch64-noF has no F flag/);
      for (const name of Object.keys(before)) t.is(during[name], before[name], `${name} changed during the session`);
      t.deepEqual(binfmtState(), before);
    });
  });

  const hostBinfmtMounted = () => parseMountinfo(fs.readFileSync('/proc/self/mountinfo', 'utf8')).some((e) => e.fstype === 'binfmt_misc');
  const title = 'binfmt: with no binfmt_misc on the host, nothing is mounted on the host during the session and no entry stays';
  if (hostBinfmtMounted()) skip(title, 'binfmt_misc is mounted on this host, so imgbuild uses it instead of a private mount');
  else {
    test(title, async (t) => {
      const child = spawnImgbuild(['run', aarch64, '--', 'sh', '-c', 'uname -m; exec sleep 611']);
      await waitForOutput(child, /^aarch64$/m);
      const during = hostBinfmtMounted();
      // The entries are global: look at them through a private mount of our own.
      const entries = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t binfmt_misc binfmt_misc ${binfmtDir} && ls ${binfmtDir}`]);
      child.kill('SIGTERM');
      const r = await child;
      t.is(r.exitCode, 130, r.all);
      t.regex(r.stdout, /^aarch64$/m);
      t.false(during, 'binfmt_misc was mounted in the host namespace');
      t.regex(entries.stdout, /imgbuild-aarch64-|qemu-aarch64/, 'some aarch64 entry served the session');
    });
  }
}
