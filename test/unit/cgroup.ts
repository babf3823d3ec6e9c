import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { choosePidsCgroup } from '../../lib/host/pids.js';
import { type CgroupFacts, chooseMemoryCgroup, parseFlatKeyed, parseProcCgroup, removeCgroup, wrapArgv } from '../../lib/host/cgroup.js';
import { fileId } from '../../lib/core/identity.js';
import { parseMountinfo } from '../../lib/parse/mountinfo.js';

const fixtures = path.resolve('test/fixtures/tools');
const fixture = (name: string) => fs.readFileSync(path.join(fixtures, name), 'utf8');

/** Facts with a fake file tree: path -> text. */
function facts(procCgroup: string, mountinfo: string, files: Record<string, string>): CgroupFacts {
  return { membership: parseProcCgroup(procCgroup), mounts: parseMountinfo(mountinfo), read: (f) => files[f] };
}

const hybridSelf = '/sys/fs/cgroup/memory/process_api/345450ef9a47892915804f148c72296d';

test('/proc/self/cgroup of a hybrid host: v1 controllers per line, the v2 line with none', (t) => {
  const m = parseProcCgroup(fixture('proc-cgroup-hybrid.txt'));
  t.is(m.length, 10);
  t.deepEqual(m.find((x) => x.controllers.includes('memory')), { id: 4, controllers: ['memory'], path: '/process_api/345450ef9a47892915804f148c72296d' });
  t.deepEqual(m.find((x) => x.id === 0), { id: 0, controllers: [], path: '/' });
  t.deepEqual(m.find((x) => x.id === 9)?.controllers, ['name=systemd']);
});

test('a cgroup path with colons is kept whole', (t) => {
  t.deepEqual(parseProcCgroup('0::/system.slice/a:b.service\n'), [{ id: 0, controllers: [], path: '/system.slice/a:b.service' }]);
  t.deepEqual(parseProcCgroup('5:cpu,cpuacct:/x\n')[0]?.controllers, ['cpu', 'cpuacct']);
});

test('hybrid host (this kind of machine): v2 has no memory controller, v1 memory hierarchy is used', (t) => {
  const probe = chooseMemoryCgroup(
    facts(fixture('proc-cgroup-hybrid.txt'), fixture('mountinfo-cgroup-hybrid.txt'), {
      '/sys/fs/cgroup/unified/cgroup.controllers': 'hugetlb\n',
      '/sys/fs/cgroup/unified/cgroup.subtree_control': '\n',
      [`${hybridSelf}/memory.limit_in_bytes`]: '9223372036854771712\n',
    }),
  );
  t.deepEqual(probe, { ok: true, version: 1, parent: hybridSelf });
});

const v2mount = '30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n';
const v2self = '0::/user.slice/user-1000.slice/session-2.scope\n';
const v2dir = '/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope';

test('v2 with memory delegated to our children: v2', (t) => {
  const probe = chooseMemoryCgroup(facts(v2self, v2mount, { [`${v2dir}/cgroup.controllers`]: 'cpu io memory pids\n', [`${v2dir}/cgroup.subtree_control`]: 'memory pids\n' }));
  t.deepEqual(probe, { ok: true, version: 2, parent: v2dir });
});

test('v2 where memory is available but not enabled for children: a reason, and no change to cgroups not ours', (t) => {
  const probe = chooseMemoryCgroup(facts(v2self, v2mount, { [`${v2dir}/cgroup.controllers`]: 'cpu io memory pids\n', [`${v2dir}/cgroup.subtree_control`]: '\n' }));
  t.false(probe.ok);
  if (!probe.ok) {
    t.regex(probe.reason, /not enabled for children of our cgroup \/user\.slice\/user-1000\.slice\/session-2\.scope/);
    t.regex(probe.reason, /no cgroup v1 memory hierarchy/);
    t.regex(probe.fix, /systemd-run/);
  }
});

test('a cgroup2 mount showing a subtree (container): our path is found relative to the mount root', (t) => {
  const mount = '50 40 0:26 /docker/abc /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n';
  const probe = chooseMemoryCgroup(facts('0::/docker/abc/build\n', mount, { '/sys/fs/cgroup/build/cgroup.controllers': 'memory\n', '/sys/fs/cgroup/build/cgroup.subtree_control': 'memory\n' }));
  t.deepEqual(probe, { ok: true, version: 2, parent: '/sys/fs/cgroup/build' });
  const outside = chooseMemoryCgroup(facts('0::/other\n', mount, {}));
  t.false(outside.ok);
  if (!outside.ok) t.regex(outside.reason, /not visible under \/sys\/fs\/cgroup/);
});

test('v1 memory co-mounted with other controllers is found by its super options', (t) => {
  const mount = '35 31 0:32 / /sys/fs/cgroup/cpu,memory rw - cgroup cgroup rw,cpu,memory\n';
  const probe = chooseMemoryCgroup(facts('3:cpu,memory:/a\n', mount, { '/sys/fs/cgroup/cpu,memory/a/memory.limit_in_bytes': '1\n' }));
  t.deepEqual(probe, { ok: true, version: 1, parent: '/sys/fs/cgroup/cpu,memory/a' });
});

test('no cgroups at all: both reasons', (t) => {
  const probe = chooseMemoryCgroup(facts('', '', {}));
  t.deepEqual(probe.ok ? undefined : probe.reason, 'no cgroup v2 hierarchy; no cgroup v1 memory hierarchy');
});

test('wrap: the shell moves itself into the cgroup, then execs the argv unchanged', (t) => {
  const argv = wrapArgv('/sys/fs/cgroup/x/imgbuild-s/cgroup.procs', ['unshare', '--root=/a b', '--', 'sh', '-c', 'echo "$1"']);
  t.deepEqual(argv, ['sh', '-c', 'echo $$ > "$1" && shift 1 && exec "$@"', 'sh', '/sys/fs/cgroup/x/imgbuild-s/cgroup.procs', 'unshare', '--root=/a b', '--', 'sh', '-c', 'echo "$1"']);
  t.throws(() => wrapArgv('/p', []));
  // v1: the memory and the pids hierarchies, one cgroup in each.
  const both = wrapArgv(['/m/cgroup.procs', '/p/cgroup.procs'], ['true']);
  t.deepEqual(both, ['sh', '-c', 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"', 'sh', '/m/cgroup.procs', '/p/cgroup.procs', 'true']);
});

test('pids: v2 when delegated to our cgroup\'s children, else the v1 pids hierarchy, else why not', (t) => {
  const mount = (fstype: string, target: string, superOptions: string) => ({ id: 1, parent: 0, dev: '0:1', root: '/', target, options: 'rw', fstype, source: 'cgroup', superOptions });
  const read = (files: Record<string, string>) => (f: string) => files[f];
  const v2 = choosePidsCgroup({ membership: parseProcCgroup('0::/user.slice\n'), mounts: [mount('cgroup2', '/sys/fs/cgroup', 'rw')], read: read({ '/sys/fs/cgroup/user.slice/cgroup.subtree_control': 'memory pids\n' }) });
  t.deepEqual(v2, { ok: true, version: 2, parent: '/sys/fs/cgroup/user.slice' });
  const v1 = choosePidsCgroup({ membership: parseProcCgroup('8:pids:/\n4:memory:/\n'), mounts: [mount('cgroup', '/sys/fs/cgroup/pids', 'rw,pids')], read: read({ '/sys/fs/cgroup/pids/cgroup.procs': '1\n' }) });
  t.deepEqual(v1, { ok: true, version: 1, parent: '/sys/fs/cgroup/pids' });
  const none = choosePidsCgroup({ membership: parseProcCgroup('0::/x\n'), mounts: [mount('cgroup2', '/sys/fs/cgroup', 'rw')], read: read({ '/sys/fs/cgroup/x/cgroup.subtree_control': 'memory\n' }) });
  t.false(none.ok);
});

test('flat keyed files: memory.events, v1 memory.oom_control', (t) => {
  const v2 = parseFlatKeyed('low 0\nhigh 0\nmax 12\noom 1\noom_kill 1\noom_group_kill 0\n');
  t.is(v2.get('oom_kill'), 1);
  const v1 = parseFlatKeyed('oom_kill_disable 0\nunder_oom 0\noom_kill 3\n');
  t.is(v1.get('oom_kill'), 3);
  t.is(parseFlatKeyed('populated 0\nfrozen 0\n').get('populated'), 0);
});

test('removeCgroup: only the directory we made, found by inode; gone is done', async (t) => {
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-unit-'));
  const dir = path.join(base, 'imgbuild-s1');
  fs.mkdirSync(dir);
  // Journaled with another inode: a same-named directory that is not ours stays.
  await removeCgroup({ kind: 'cgroup', path: dir, id: fileId(base) });
  t.true(fs.existsSync(dir));
  await removeCgroup({ kind: 'cgroup', path: dir, id: fileId(dir) });
  t.false(fs.existsSync(dir));
  await removeCgroup({ kind: 'cgroup', path: dir }); // already gone
  fs.mkdirSync(dir);
  await removeCgroup({ kind: 'cgroup', path: dir }); // intent only: the name holds our session id
  t.false(fs.existsSync(dir));
  fs.rmSync(base, { recursive: true });
});
