// The command line's first word: a mistyped verb gets one line naming the nearest verb; a path
// or a real verb goes on to yargs; `imgbuild completion` prints yargs' completion script; colour
// follows NO_COLOR; --version is imgbuild's own.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';
import { noColor } from '../../bin/reporter.js';
import { distance, mistypedVerb, protectDashImage } from '../../bin/verbs.js';

const verbs = ['build', 'inspect', 'mount', 'umount', 'recover', 'completion'];

test('the nearest verb within two edits, never for an option, a path, a file or a real verb', (t) => {
  t.is(distance('inpsect', 'inspect'), 2);
  t.is(distance('', 'run'), 3);
  t.is(mistypedVerb('inpsect', verbs), 'inspect');
  t.is(mistypedVerb('recovr', verbs), 'recover');
  t.is(mistypedVerb('mount', verbs), undefined);
  t.is(mistypedVerb('--help', verbs), undefined);
  t.is(mistypedVerb('pynq.img', verbs), undefined);
  t.is(mistypedVerb('./mount', verbs), undefined);
  t.is(mistypedVerb('package.json', verbs), undefined);
  t.is(mistypedVerb('zzzzzzzz', verbs), undefined, 'nothing near: yargs answers as before');
});

test('the image after --, a name starting with - as ./-x.img; run and shell only when the file exists (their -- starts the command)', (t) => {
  const all = ['build', 'inspect', 'run', 'shell', 'mount', 'grow', 'recover'];
  t.deepEqual(protectDashImage(['inspect', '--json', '--', '-x.img'], all), ['inspect', '--json', './-x.img']);
  t.deepEqual(protectDashImage(['--target', 'local:.', '--', '-x.img'], all), ['--target', 'local:.', './-x.img'], 'the default verb');
  t.deepEqual(protectDashImage(['run', '--', '-nope.img', 'true'], all), ['run', '--', '-nope.img', 'true'], 'no such file: the command as given');
  t.deepEqual(protectDashImage(['run', '--', '-tsconfig.json'], all), ['run', '--', '-tsconfig.json']);
  t.deepEqual(protectDashImage(['run', 'x.img', '--', 'ls', '-l'], all), ['run', 'x.img', '--', 'ls', '-l']);
  t.deepEqual(protectDashImage(['recover', '--', '-x'], all), ['recover', '--', '-x'], 'no image');
  t.deepEqual(protectDashImage(['inspect', '--', '/images/x.img'], all), ['inspect', '/images/x.img']);
  t.deepEqual(protectDashImage(['--cache-dir', '/c', 'run', 'x.img', '--', 'sh', '-c', 'true'], all), ['--cache-dir', '/c', 'run', 'x.img', '--', 'sh', '-c', 'true'], 'the verb after global options');
  t.deepEqual(protectDashImage(['run', '--', '/images/x.img', 'true'], all), ['run', '--', '/images/x.img', 'true'], 'run: only a dash name');
});

test('imgbuild inpsect x.img: one line, exit 2; imgbuild completion: the completion script', async (t) => {
  const typo = await execa('node', ['dist/imgbuild.mjs', 'inpsect', 'x.img'], { reject: false, all: true });
  t.is(typo.exitCode, 2);
  t.is(String(typo.all).trim(), 'imgbuild: usage error: there is no verb inpsect; did you mean imgbuild inspect? (imgbuild --help lists the verbs)');
  const completion = await execa('node', ['dist/imgbuild.mjs', 'completion'], { reject: false, all: true });
  t.is(completion.exitCode, 0, String(completion.all));
  t.regex(String(completion.stdout), /imgbuild-completions/);
});

test('NO_COLOR (set and not empty) turns colour off, spinner included', (t) => {
  t.true(noColor({ NO_COLOR: '1' }));
  t.false(noColor({ NO_COLOR: '' }), 'no-color.org: an empty value does not count');
  t.false(noColor({}));
});

test('imgbuild --version is imgbuild\'s own, wherever it is run from (not the nearest package.json\'s)', async (t) => {
  const own = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string }).version;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-version-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'package.json'), '{"name": "someone-else", "version": "9.9.9"}\n');
  const r = await execa('node', [path.resolve('dist/imgbuild.mjs'), '--version'], { cwd: dir, reject: false, all: true });
  t.is(r.exitCode, 0, String(r.all));
  t.is(String(r.stdout).trim(), own);
});

test('every verb\'s help has an example and the exit codes; faults is not in the main help', async (t) => {
  for (const verb of ['build', 'inspect', 'run', 'shell', 'mount', 'umount', 'grow', 'recover', 'doctor', 'cache', 'sample', 'targets']) {
    const r = await execa('node', ['dist/imgbuild.mjs', verb, '--help'], { reject: false, all: true });
    t.is(r.exitCode, 0, `${verb}: ${String(r.all)}`);
    t.regex(String(r.stdout), /Examples:\n\s+imgbuild /, verb);
    t.regex(String(r.stdout), /Exit codes: 0 ok, 1 a step failed, 2 usage, 3 precondition/, verb);
  }
  const main = await execa('node', ['dist/imgbuild.mjs', '--help'], { reject: false });
  t.notRegex(String(main.stdout), /imgbuild faults/);
  t.regex(String(main.stdout), /--no-color|--color/);
});
