// Attach paths this CI kernel lacks, run for real inside a VM with Debian's stock kernel
// (scripts/vm-test.sh): kpartx (device-mapper), partscan (losetup -P) and vfat boot partitions.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { attachSupport, fsckRoot, type HostContext, hostUnchanged, imgbuild, sampleSync, spawnImgbuild, tmpdir, waitForChrooted } from '../helpers/cli.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const inVm = process.env.IMGBUILD_VM === '1';
const image = inVm ? sampleSync('aarch64') : '';
const support = inVm ? attachSupport('mbr') : {};

for (const strategy of ['kpartx', 'partscan'] as const) {
  const why = !inVm ? 'not inside the VM tier (run through scripts/vm-test.sh)' : support[strategy];
  const define = (title: string, fn: (t: ExecutionContext<HostContext>) => Promise<void>) => {
    if (why) {
      test.skip(`${title} [skipped: ${why}]`, () => {});
      console.log(`skipped: ${title}: ${why}`);
    } else test(title, fn);
  };

  define(`--attach ${strategy}: inspect, and run with the vfat boot partition mounted`, async (t) => {
    const i = await imgbuild(['inspect', image, '--json', '--attach', strategy]);
    t.is(i.exitCode, 0, i.all);
    t.is(JSON.parse(i.stdout).attach, strategy);
    const r = await imgbuild(['run', image, '--attach', strategy, '--', 'sh', '-c', 'uname -m; cat /boot/config.txt; grep " /boot " /proc/mounts']);
    t.is(r.exitCode, 0, r.all);
    t.regex(r.stdout, /^aarch64/);
    t.regex(r.stdout, /arm_64bit=1/);
    t.regex(r.stdout, / \/boot vfat ro,/);
    t.notRegex(r.stderr, /not mounted/);
  });

  define(`--attach ${strategy}: kill -9, then recover leaves no map, loop or entry`, async (t) => {
    const child = spawnImgbuild(['run', image, '--attach', strategy, '--', 'sleep', '600']);
    await waitForChrooted(/sleep 600/, 60_000);
    child.kill('SIGKILL');
    await child;
    t.notRegex(fs.readFileSync('/proc/self/mountinfo', 'utf8'), /\/run\/imgbuild\/sessions/);
    const rec = await imgbuild(['recover']);
    t.is(rec.exitCode, 0, rec.all);
    t.regex((await imgbuild(['recover'])).stdout, /nothing to do/);
  });

  define(`--attach ${strategy}: SIGINT during run cleans up and exits 130`, async (t) => {
    const child = spawnImgbuild(['run', image, '--attach', strategy, '--', 'sleep', '600']);
    await waitForChrooted(/sleep 600/, 60_000);
    child.kill('SIGINT');
    const r = await child;
    t.is(r.exitCode, 130, r.all);
  });

  define(`--attach ${strategy}: mount and umount, boot at DIR/boot`, async (t) => {
    const dir = tmpdir('imgbuild-vm-mnt-');
    const copy = path.join(tmpdir(), 'copy.img');
    fs.copyFileSync(image, copy);
    const m = await imgbuild(['mount', copy, dir, '--attach', strategy]);
    t.is(m.exitCode, 0, m.all);
    t.true(fs.existsSync(path.join(dir, 'boot/config.txt')));
    const u = await imgbuild(['umount', dir]);
    t.is(u.exitCode, 0, u.all);
    t.is(await fsckRoot(copy), 0);
    fs.rmSync(path.dirname(copy), { recursive: true });
    fs.rmdirSync(dir);
  });
}

// The boot partition is mounted only where the kernel has vfat: its fault point runs here.
for (const action of ['throw', 'sigint', 'sigterm', 'kill9'] as const) {
  const why = !inVm ? 'not inside the VM tier (run through scripts/vm-test.sh)' : support.partscan ? `partscan: ${support.partscan}` : undefined;
  const title = `fault at mount:boot (${action}): exit ${action === 'throw' ? 1 : action === 'kill9' ? 'by SIGKILL, then recover' : 130}, nothing left`;
  if (why) {
    test.skip(`${title} [skipped: ${why}]`, () => {});
    continue;
  }
  test(title, async (t) => {
    const dir = tmpdir('imgbuild-vm-fault-');
    const copy = path.join(dir, 'copy.img');
    fs.copyFileSync(image, copy);
    const child = spawnImgbuild(['run', copy, '--rw', '--attach', 'partscan', '--', 'true'], { IMGBUILD_FAULT: `mount:boot:${action}` });
    const r = await child;
    if (action === 'kill9') {
      t.is(r.signal, 'SIGKILL', r.all);
      t.notRegex(fs.readFileSync('/proc/self/mountinfo', 'utf8'), /\/run\/imgbuild\/sessions/);
      const rec = await imgbuild(['recover']);
      t.is(rec.exitCode, 0, rec.all);
      t.regex((await imgbuild(['recover'])).stdout, /nothing to do/);
    } else {
      t.is(r.exitCode, action === 'throw' ? 1 : 130, r.all);
      t.regex(r.all, action === 'throw' ? /injected fault at mount:boot/ : /interrupted/);
    }
    t.is(await fsckRoot(copy), 0);
    fs.rmSync(dir, { recursive: true });
  });
}
