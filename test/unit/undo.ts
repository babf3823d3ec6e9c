import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { createContext } from '../../lib/core/context.js';
import { CleanupError } from '../../lib/core/errors.js';
import { type HostChange, Journal, parseJournal, readJournal } from '../../lib/undo/journal.js';
import type { Run } from '../../lib/core/runner.js';
import { Transaction } from '../../lib/undo/transaction.js';
import { UndoStack } from '../../lib/undo/stack.js';

test('undo steps run newest first, all of them, and failures are named', async (t) => {
  const order: string[] = [];
  const stack = new UndoStack();
  stack.defer('a', () => void order.push('a'));
  stack.defer('b', () => {
    order.push('b');
    throw new Error('b broke');
  });
  stack.defer('c', async () => void order.push('c'));
  const failures = await stack.unwind();
  t.deepEqual(order, ['c', 'b', 'a', 'b'], 'a failed step is retried once after the others');
  t.is(failures.length, 1);
  t.is(failures[0]!.step, 'b');
  t.is(stack.size, 0);
  const err = new CleanupError(failures);
  t.regex(err.message, /b: b broke/);
  t.is(err.exitCode, 4);
});

test('a step that fails once and then succeeds is retried after the others and reported as recovered', async (t) => {
  const order: string[] = [];
  let tries = 0;
  const stack = new UndoStack();
  stack.defer('umount', () => {
    order.push('umount');
    if (tries++ === 0) throw new Error('target is busy');
  });
  stack.defer('kill', () => void order.push('kill'));
  const failures = await stack.unwind();
  t.deepEqual(failures, []);
  t.deepEqual(order, ['kill', 'umount', 'umount']);
  t.deepEqual(stack.recovered.map((r) => r.step), ['umount']);
});

test('move() hands every pending step to a new owner', async (t) => {
  const stack = new UndoStack();
  stack.defer('x', () => {});
  const moved = stack.move();
  t.is(stack.size, 0);
  t.deepEqual(moved.pending(), ['x']);
});

// A session-shaped sequence of host changes through a fake runner: when the k-th step fails,
// exactly the steps before it are undone, in reverse, and the journal is left with nothing.
const steps: HostChange[] = [
  { kind: 'workdir', path: '/run/x' },
  { kind: 'loop', image: { dev: 1, ino: 2 }, imagePath: '/i.img', offset: 0, sizelimit: 0 },
  { kind: 'partitions', device: '/dev/loop9', diskseq: '7' },
  { kind: 'binfmt', name: 'imgbuild-aarch64-x', interpreter: '/q', magic: '7f' },
  { kind: 'mount', target: '/mnt/x' },
];

for (let failAt = 0; failAt <= steps.length; failAt++) {
  test(`failure at step ${failAt} undoes steps 0..${failAt - 1} in reverse`, async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-unit-'));
    const calls: string[] = [];
    const run: Run = async (file) => {
      calls.push(file);
      if (calls.length - 1 === failAt) throw new Error(`${file} failed`);
      return { exitCode: 0, stdout: '', stderr: '', all: '' };
    };
    const ctx = createContext({ run, stateDir: dir });
    const journal = Journal.create(dir, 'test');
    const undone: string[] = [];
    const tx = new Transaction(ctx, journal, async (change, made) => {
      if (made) undone.push(change.kind);
    });
    let error: unknown;
    try {
      for (const s of steps) await tx.change(`undo ${s.kind}`, s, async () => (await run(s.kind, []), s));
    } catch (e) {
      error = e;
    }
    const failures = await tx.unwind();
    t.deepEqual(failures, []);
    t.is(!!error, failAt < steps.length);
    t.deepEqual(undone, steps.slice(0, failAt).map((s) => s.kind).reverse());
    t.deepEqual(readJournal(journal.file).pending, []);
    fs.rmSync(dir, { recursive: true });
  });
}

test('a journal replays to what is still pending, newest first, and survives a torn last line', (t) => {
  const lines = [
    { t: 'begin', session: 's', owner: { pid: 1, start: '1' }, verb: 'run', time: '' },
    { t: 'intent', seq: 1, change: steps[1] },
    { t: 'made', seq: 1, change: { ...steps[1], device: '/dev/loop3', diskseq: '9' } },
    { t: 'intent', seq: 2, change: steps[3] },
    { t: 'made', seq: 2, change: steps[3] },
    { t: 'undone', seq: 2 },
    { t: 'intent', seq: 3, change: steps[4] },
  ].map((l) => JSON.stringify(l));
  const state = parseJournal('f', `${lines.join('\n')}\n{"t":"made","se`);
  t.deepEqual(state.pending.map((p) => [p.seq, p.made]), [
    [3, false],
    [1, true],
  ]);
  t.is((state.pending[1]!.change as { device?: string }).device, '/dev/loop3');
});
