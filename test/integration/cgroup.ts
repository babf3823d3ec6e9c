// Memory cgroups on the real host: a command over the limit is OOM-killed inside its cgroup (not
// elsewhere on the host), the cgroup says so, and the cgroup is gone after the transaction or,
// after kill -9 of its owner, after `imgbuild recover`.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { execa } from 'execa';
import { hostBinfmtDir } from '../../lib/host/binfmt.js';
import { cgroupDir, createMemoryCgroup, type MemoryCgroup, parseProcCgroup, probeMemoryCgroup, removeCgroup, wrapArgv } from '../../lib/host/cgroup.js';
import { makeUndoer } from '../../lib/host/undoers.js';
import { type Context, createContext } from '../../lib/core/context.js';
import { fileId } from '../../lib/core/identity.js';
import { Journal, readJournal } from '../../lib/undo/journal.js';
import { waitFor } from '../../lib/core/wait.js';
import { readMountinfo } from '../../lib/parse/mountinfo.js';
import { Namespace } from '../../lib/host/namespace.js';
import { Transaction } from '../../lib/undo/transaction.js';
import { type HostContext, hostUnchanged, imgbuild, tmpdir } from '../helpers/cli.js';
import { snapshot } from '../helpers/host.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const MiB = 1 << 20;
const probe = probeMemoryCgroup();
const stateDir = tmpdir('imgbuild-cgroup-state-');
test.after.always(() => fs.rmSync(stateDir, { recursive: true, force: true }));

/** A memory cgroup made through a real journaled transaction; checks it is gone after the unwind. */
async function withMemoryCgroup(t: ExecutionContext<HostContext>, limitBytes: number, fn: (cg: MemoryCgroup, ctx: Context, journal: Journal) => Promise<void>): Promise<void> {
  const ctx = createContext({ stateDir });
  const journal = Journal.create(stateDir, 'test-cgroup');
  const tx = new Transaction(ctx, journal, makeUndoer({ run: ctx.run, binfmtDir: async () => hostBinfmtDir }));
  let dir: string | undefined;
  try {
    const cg = await createMemoryCgroup(tx, { session: journal.id, limitBytes });
    dir = cg.dir;
    await fn(cg, ctx, journal);
  } finally {
    t.deepEqual(await tx.unwind(), []);
  }
  t.deepEqual(readJournal(journal.file).pending, []);
  journal.close();
  t.false(fs.existsSync(dir), 'the cgroup is removed when the transaction unwinds');
}

const run = (ctx: Context, argv: string[]) => ctx.run(argv[0]!, argv.slice(1), { allowFailure: true });
const killed = (r: { exitCode: number; signal?: string }) => r.signal === 'SIGKILL' || r.exitCode === 137;

if (!probe.ok) {
  test.skip(`memory cgroups [skipped on this host: ${probe.reason}]`, () => {});
  console.log(`skipped: memory cgroups: ${probe.reason}`);
} else {
  const parent = probe.parent;

  test('over the limit: the command is OOM-killed in its own cgroup and oomKilled() says so', async (t) => {
    await withMemoryCgroup(t, 64 * MiB, async (cg, ctx, journal) => {
      t.is(cg.dir, path.join(parent, `imgbuild-${journal.id}`));
      const pending = readJournal(journal.file).pending;
      t.deepEqual(pending.map((p) => [p.made, p.change]), [[true, { kind: 'cgroup', path: cg.dir, id: fileId(cg.dir) }]]);
      const limitFile = cg.version === 2 ? 'memory.max' : 'memory.limit_in_bytes';
      t.is(fs.readFileSync(path.join(cg.dir, limitFile), 'utf8').trim(), String(64 * MiB));
      if (cg.swapLimited && cg.version === 1) t.is(fs.readFileSync(path.join(cg.dir, 'memory.memsw.limit_in_bytes'), 'utf8').trim(), String(64 * MiB));
      t.false(cg.oomKilled());
      const r = await run(ctx, cg.wrap(['python3', '-c', 'b = bytearray(256 << 20)']));
      t.true(killed(r), `exit ${r.exitCode} ${r.signal ?? ''}: ${r.all}`);
      t.true(cg.oomKilled());
      t.true((cg.peakBytes() ?? 64 * MiB) <= 64 * MiB);
    });
  });

  test('under the limit: the command succeeds, oomKilled() is false, the peak is seen', async (t) => {
    await withMemoryCgroup(t, 64 * MiB, async (cg, ctx) => {
      const r = await run(ctx, cg.wrap(['python3', '-c', 'b = bytearray(16 << 20); print(len(b))']));
      t.is(r.exitCode, 0, r.all);
      t.is(r.stdout.trim(), String(16 * MiB));
      t.true((await snapshot()).cgroups.includes(cg.dir), 'the leftover check sees our cgroups');
      t.false(cg.oomKilled());
      const peak = cg.peakBytes();
      if (peak !== undefined) t.true(peak >= 16 * MiB && peak <= 64 * MiB, `peak ${peak}`);
    });
  });

  test('wrap through nsenter into a session namespace (mount + PID): the command runs in the cgroup and is OOM-killed there', async (t) => {
    await withMemoryCgroup(t, 64 * MiB, async (cg, ctx, journal) => {
      const ns = await Namespace.open(ctx);
      try {
        const cat = cg.wrap(['cat', '/proc/self/cgroup']);
        const where = await ns.exec(cat[0]!, cat.slice(1), { pidns: true });
        t.regex(where.stdout, new RegExp(`^\\d+:${cg.version === 2 ? '' : '[^:]*memory[^:]*'}:.*/imgbuild-${journal.id}$`, 'm'));
        const argv = cg.wrap(['python3', '-c', 'b = bytearray(256 << 20)']);
        const r = await ns.exec(argv[0]!, argv.slice(1), { pidns: true, allowFailure: true });
        t.true(killed(r), `exit ${r.exitCode} ${r.signal ?? ''}: ${r.all}`);
        t.true(cg.oomKilled());
      } finally {
        await ns.close();
      }
    });
  });

  test('kill -9 of the owner: the cgroup and what runs in it (and below it) are left; imgbuild recover kills and removes them', async (t) => {
    const lib = path.resolve('dist/lib');
    // A holder that makes the cgroup through a real journal, starts two sleepers on the host (one in a
    // cgroup made below ours, as a build could), says where, and waits to be killed.
    const script = `
      import fs from 'node:fs';
      import { spawn } from 'node:child_process';
      import { createContext } from '${lib}/core/context.js';
      import { Journal } from '${lib}/undo/journal.js';
      import { Transaction } from '${lib}/undo/transaction.js';
      import { makeUndoer } from '${lib}/host/undoers.js';
      import { createMemoryCgroup, wrapArgv } from '${lib}/host/cgroup.js';
      const ctx = createContext({ stateDir: process.argv[1] });
      const journal = Journal.create(ctx.stateDir, 'test-cgroup');
      const tx = new Transaction(ctx, journal, makeUndoer({ run: ctx.run, binfmtDir: async () => '/proc/sys/fs/binfmt_misc' }));
      const cg = await createMemoryCgroup(tx, { session: journal.id, limitBytes: ${64 * MiB} });
      fs.mkdirSync(cg.dir + '/inner');
      const start = (argv) => spawn(argv[0], argv.slice(1), { stdio: 'ignore' }).pid;
      const a = start(cg.wrap(['sleep', '600']));
      const b = start(wrapArgv(cg.dir + '/inner/cgroup.procs', ['sleep', '600']));
      console.log(JSON.stringify({ dir: cg.dir, pids: [a, b] }));
      setInterval(() => {}, 1 << 30);
    `;
    const holder = execa('node', ['--input-type=module', '-e', script, stateDir], { reject: false, all: true });
    const line = await new Promise<string>((resolve, reject) => {
      holder.stdout.on('data', (d: Buffer) => resolve(d.toString()));
      void holder.then((r) => reject(new Error(`holder exited: ${r.all}`)));
    });
    const { dir, pids } = JSON.parse(line) as { dir: string; pids: number[] };
    const inCgroup = () => [...fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n'), ...fs.readFileSync(path.join(dir, 'inner', 'cgroup.procs'), 'utf8').split('\n')].filter(Boolean).map(Number);
    t.true(await waitFor(() => pids.every((p) => inCgroup().includes(p)), 5000), 'both sleepers moved into the cgroups');
    holder.kill('SIGKILL');
    await holder;
    t.true(fs.existsSync(dir), 'the cgroup outlives its owner');

    const dry = await imgbuild(['recover', '--dry-run', '--state-dir', stateDir]);
    t.is(dry.exitCode, 0, dry.all);
    t.regex(dry.stdout, new RegExp(`would.*remove memory cgroup ${dir}`));
    t.true(fs.existsSync(dir));

    const rec = await imgbuild(['recover', '--state-dir', stateDir]);
    t.is(rec.exitCode, 0, rec.all);
    t.notRegex(rec.stdout, /FAIL/);
    t.false(fs.existsSync(dir));
    for (const pid of pids) {
      let state = '';
      try {
        state = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')[0]!;
      } catch {
        // reaped
      }
      t.true(state === '' || state === 'Z', `sleeper ${pid} is dead (state ${state || 'gone'})`);
    }
    t.deepEqual(fs.readdirSync(path.join(stateDir, 'sessions')).filter((n) => n.endsWith('.journal')), []);
  });
}

// The undo's cgroup v2 path (cgroup.kill, then rmdir), on the unified hierarchy even where it has no
// memory controller: a hybrid host otherwise never runs it.
const v2self = parseProcCgroup(fs.readFileSync('/proc/self/cgroup', 'utf8')).find((m) => m.id === 0 && m.controllers.length === 0);
const v2parent = readMountinfo('self')
  .filter((m) => m.fstype === 'cgroup2')
  .map((m) => (v2self ? cgroupDir(m, v2self.path) : undefined))
  .find((d) => d !== undefined && fs.existsSync(path.join(d, 'cgroup.procs')));
if (!v2parent) {
  test.skip('cgroup v2 undo [skipped on this host: no cgroup v2 hierarchy]', () => {});
} else {
  test('cgroup v2 undo: what runs in our cgroup is killed and the cgroup removed', async (t) => {
    const dir = path.join(v2parent, `imgbuild-test-${process.pid}`);
    fs.mkdirSync(dir);
    const change = { kind: 'cgroup' as const, path: dir, id: fileId(dir) };
    const argv = wrapArgv(path.join(dir, 'cgroup.procs'), ['sleep', '600']);
    const sleeper = execa(argv[0]!, argv.slice(1), { reject: false, stdio: 'ignore' });
    try {
      t.true(await waitFor(() => fs.readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').trim() === String(sleeper.pid), 5000));
      await removeCgroup(change);
      t.false(fs.existsSync(dir));
      t.is((await sleeper).signal, 'SIGKILL');
    } finally {
      if (fs.existsSync(dir)) await removeCgroup(change);
    }
  });
}
