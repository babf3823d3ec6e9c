// The box, attacked from inside (test/fixtures/py/attack-backend/escape.py): the classic chroot
// escape, climbing out of /, planting a host file, a device node for a host disk, a mount, the
// hostname, core_pattern, /proc/1/root, and the capabilities left. Through `imgbuild run` and from
// a build backend while a real build runs; each attack fails inside the box and the host canary,
// the host snapshot and the image stay as they were. --privileged opens the capabilities but not
// the root: there is still no host directory above /.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { readEntry, readZip } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');
const project = path.resolve('test/fixtures/py/attack-backend');

// Capabilities by number (linux/capability.h).
const cap = { chown: 0, dacOverride: 1, fowner: 3, setgid: 6, setuid: 7, netAdmin: 12, sysModule: 16, sysRawio: 17, sysChroot: 18, sysPtrace: 19, sysAdmin: 21, sysBoot: 22, sysTime: 25, mknod: 27, setfcap: 31 };

interface Host {
  canary: string;
  secret: string;
  plant: string;
}

function hostFiles(t: ExecutionContext<HostContext>): Host {
  const id = crypto.randomBytes(6).toString('hex');
  const secret = `imgbuild-canary-${crypto.randomBytes(12).toString('hex')}`;
  const canary = `/var/tmp/imgbuild-attack-canary-${id}`;
  const plant = `/var/tmp/imgbuild-attack-plant-${id}`;
  fs.writeFileSync(canary, `${secret}\n`, { mode: 0o600 });
  t.teardown(() => {
    fs.rmSync(canary, { force: true });
    fs.rmSync(plant, { force: true });
  });
  return { canary, secret, plant };
}

function outcomes(report: string): Record<string, string> {
  return Object.fromEntries(report.split('\n').flatMap((l) => {
    const m = /^([a-z0-9-]+): (.*)$/.exec(l);
    return m ? [[m[1]!, m[2]!]] : [];
  }));
}

function capabilityBits(status: string): bigint {
  const m = /CapBnd=([0-9a-f]+)/.exec(status);
  if (!m) throw new Error(`no CapBnd in ${status}`);
  return BigInt(`0x${m[1]}`);
}

function hostUntouched(t: ExecutionContext<HostContext>, h: Host, report: string, hostname: string): void {
  t.false(report.includes(h.secret), 'the canary was read');
  t.is(fs.readFileSync(h.canary, 'utf8'), `${h.secret}\n`, 'the canary changed');
  t.false(fs.existsSync(h.plant), 'a file was planted on the host');
  t.is(os.hostname(), hostname, 'the host\'s hostname changed');
}

/** What every attack gets in the box (the default). */
function boxed(t: ExecutionContext<HostContext>, r: Record<string, string>): void {
  t.regex(r['chroot-escape']!, /^refused PermissionError errno=1$/, 'chroot needs CAP_SYS_CHROOT');
  t.regex(r.climb!, /^done at \/ no canary$/);
  t.regex(r.mknod!, /^refused PermissionError errno=1$/, 'mknod needs CAP_MKNOD');
  t.regex(r.mount!, /^refused/);
  t.regex(r.hostname!, /^refused PermissionError errno=1$/, 'sethostname needs CAP_SYS_ADMIN');
  t.regex(r['core-pattern']!, /^refused OSError errno=30$/, '/proc/sys is read-only');
  const entries = /holds (.*)$/.exec(r['proc1-root']!)![1]!.split(',');
  t.true(entries.includes('etc') && entries.includes('usr'), r['proc1-root']);
  t.false(entries.includes('work'), `/proc/1/root is the image's root, not the host's: ${r['proc1-root']}`);
  const bits = capabilityBits(r.status!);
  for (const [name, n] of Object.entries(cap)) {
    const kept = ['chown', 'dacOverride', 'fowner', 'setgid', 'setuid', 'setfcap'].includes(name);
    t.is((bits >> BigInt(n)) & 1n, kept ? 1n : 0n, `${name} ${kept ? 'kept' : 'dropped'} (${r.status})`);
  }
  t.regex(r.status!, /NoNewPrivs=1$/);
}

test('imgbuild run: every attack fails inside the box; the canary and the host stay as they were', async (t) => {
  const h = hostFiles(t);
  const r = await imgbuild(['run', aarch64, '--workspace', project, '--', 'python3', '/workspace/escape.py', h.canary, h.plant]);
  t.is(r.exitCode, 0, r.all);
  const o = outcomes(r.stdout);
  boxed(t, o);
  t.regex(o.plant!, /^done wrote /, 'the plant lands in the throwaway layer, not on the host');
  hostUntouched(t, h, r.all, os.hostname());
});

test('--privileged opens the capabilities, says so, and still leaves no host directory above /: /dev stays nodev, /proc/sys read-only, the hostname its own', async (t) => {
  const h = hostFiles(t);
  const hostname = os.hostname();
  const r = await imgbuild(['run', aarch64, '--privileged', '--workspace', project, '--', 'python3', '/workspace/escape.py', h.canary, h.plant]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.stderr, /warning: --privileged: code run in the image keeps every capability/);
  const o = outcomes(r.stdout);
  t.regex(o['chroot-escape']!, /^done chroot worked$/);
  t.regex(o.climb!, /^done at \/ no canary$/, 'pivot_root: the climb ends at the image\'s root');
  t.regex(o.mknod!, /^refused PermissionError errno=13$/, 'a node made in /dev does not open (nodev)');
  t.regex(o.hostname!, /^done hostname now imgbuild-attack$/, 'the box has a UTS namespace of its own');
  t.regex(o['core-pattern']!, /^refused OSError errno=30$/);
  t.regex(o.status!, /NoNewPrivs=0$/);
  hostUntouched(t, h, r.all, hostname);
});

test('a build backend that attacks the host while a real build runs: each attack fails, the wheel still builds and carries the report, the canary is untouched', async (t) => {
  const h = hostFiles(t);
  const out = tmpdir();
  const r = await imgbuild([aarch64, '--target', `local:${project},env=ATTACK_CANARY=${h.canary},env=ATTACK_PLANT=${h.plant}`, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const wheel = path.join(out, 'imgbuild_attack-1.0-py3-none-any.whl');
  const e = readZip(wheel).find((m) => m.name === 'imgbuild_attack/report.txt');
  t.truthy(e, 'the report is in the wheel');
  const report = readEntry(wheel, e!).toString('utf8');
  t.log(report);
  const o = outcomes(report);
  boxed(t, o);
  hostUntouched(t, h, `${r.all}\n${report}`, os.hostname());
});
