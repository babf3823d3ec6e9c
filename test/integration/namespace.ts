// The session namespace's holder as a command server (lib/namespace.ts): short uncancellable
// commands (mounts, umounts) run through it, in the session's mount namespace, with their output
// and exit code; everything else still goes through nsenter. Real namespaces, host unchanged.
import fs from 'node:fs';
import anyTest, { type TestFn } from 'ava';
import { createContext } from '../../lib/core/context.js';
import { CommandError } from '../../lib/core/errors.js';
import type { ImgbuildEvent } from '../../lib/core/events.js';
import { Namespace } from '../../lib/host/namespace.js';
import { type HostContext, hostUnchanged, tmpdir } from '../helpers/cli.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const stateDir = tmpdir('imgbuild-ns-state-');
test.after.always(() => fs.rmSync(stateDir, { recursive: true, force: true }));

function context() {
  const commands: (readonly string[])[] = [];
  const ctx = createContext({ stateDir, emit: (e: ImgbuildEvent) => (e.kind === 'cmd' ? commands.push(e.argv) : undefined) });
  return { ctx, commands };
}

test('served commands: exact arguments, merged output, exit codes, errors, in order, in the namespace', async (t) => {
  const { ctx, commands } = context();
  const ns = await Namespace.open(ctx);
  try {
    // Arguments that a shell would mangle arrive as they were given.
    const tricky = ["it's", '$HOME', '`id`', 'a b', '*', '"q"', '\\', ';', '', '-n'];
    const echo = await ns.exec('printf', ['%s|', ...tricky], { signal: null });
    t.is(echo.stdout, `${tricky.join('|')}|`);
    t.deepEqual(commands.at(-1), ['printf', '%s|', ...tricky], 'logged without nsenter: it ran in the holder');

    const failed = await ns.exec('sh', ['-c', 'echo to-out; echo to-err >&2; exit 7'], { signal: null, allowFailure: true });
    t.is(failed.exitCode, 7);
    t.regex(failed.all, /to-out\nto-err/);
    const error = await t.throwsAsync(ns.exec('sh', ['-c', 'echo nope >&2; exit 4'], { signal: null }), { instanceOf: CommandError });
    t.is(error.commandExitCode, 4);
    t.regex(error.message, /nope/);

    // In the session's mount namespace (and its PID namespace, as PID 1's child).
    const where = await ns.exec('readlink', ['/proc/self/ns/mnt'], { signal: null });
    t.is(where.stdout.trim(), ns.mntns);
    t.not(where.stdout.trim(), fs.readlinkSync('/proc/self/ns/mnt'));

    // Many at once: one at a time, in the order asked, each with its own output.
    const many = await Promise.all(Array.from({ length: 20 }, (_, i) => ns.exec('sh', ['-c', `echo ${i}; exit ${i % 3}`], { signal: null, allowFailure: true })));
    t.deepEqual(many.map((r) => [r.stdout.trim(), r.exitCode]), Array.from({ length: 20 }, (_, i) => [String(i), i % 3]));

    // A command reading stdin gets /dev/null, not the holder's pipe.
    const stdin = await ns.exec('sh', ['-c', 'cat; echo done'], { signal: null });
    t.is(stdin.stdout.trim(), 'done');

    // Not served: cancellable, or with an environment, or an argument on two lines.
    const env = await ns.exec('sh', ['-c', 'echo $X'], { env: { X: 'through-nsenter' } });
    t.is(env.stdout.trim(), 'through-nsenter');
    t.is(commands.at(-1)?.[0], 'nsenter');
    const lines = await ns.exec('printf', ['%s', 'two\nlines'], { signal: null });
    t.is(lines.stdout, 'two\nlines');
    t.is(commands.at(-1)?.[0], 'nsenter');
  } finally {
    await ns.close();
  }
  // Once the holder is gone, a command fails like a command (the mounts went with the namespace).
  const after = await ns.exec('umount', ['/nowhere'], { signal: null, allowFailure: true });
  t.is(after.exitCode, 1);
  t.regex(after.all, /holder has exited/);
});
