// imgbuild doctor on this host: by default it probes for real (loop partition scanning, a private
// namespace for binfmt_misc, unshare), says so, and leaves nothing; --no-probe only reads.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { type HostContext, hostUnchanged, imgbuild, tmpdir } from '../helpers/cli.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

test('doctor probes and says so: partition scanning answered for MBR and GPT, the probe cached for the boot', async (t) => {
  const state = tmpdir();
  const r = await imgbuild(['doctor', '--state-dir', state, '--verbose']);
  t.true(r.exitCode === 0 || r.exitCode === 3, r.all);
  t.regex(r.stderr, /doctor probes the host: two small loop devices/);
  t.regex(r.stderr, /\+ losetup /, 'the loop probe ran (and --verbose logs it, which the --no-probe test relies on)');
  t.regex(r.stdout, /loop partition scanning \(losetup -P\)\s+MBR: (yes|no), GPT: (yes|no)/);
  t.regex(r.stdout, /the box \(chroot entry, lib\/host\/enter\.c\)\s+\S+\/enter-[0-9a-f]{12}: pivot_root, own mount\/PID\/UTS\/IPC namespaces/, 'the box was entered for real');
  t.true(fs.existsSync(path.join(state, 'capabilities.json')));
});

test('doctor --no-probe attaches nothing and opens no namespace: what was not probed says so, and nothing is cached', async (t) => {
  const state = tmpdir();
  const r = await imgbuild(['doctor', '--no-probe', '--state-dir', state, '--verbose']);
  t.true(r.exitCode === 0 || r.exitCode === 3, r.all);
  t.notRegex(r.stderr, /\+ (losetup|unshare|nsenter|mount) /, 'no loop device, namespace or mount');
  t.notRegex(r.stderr, /doctor probes the host/);
  t.regex(r.stdout, /n\/a  loop partition scanning \(losetup -P\)\s+not probed \(--no-probe, and no answer cached since boot\)/);
  t.regex(r.stdout, /n\/a  unshare \(mount \+ PID namespaces\)\s+not probed \(--no-probe\)/);
  t.regex(r.stdout, /qemu-user aarch64/);
  t.false(fs.existsSync(path.join(state, 'capabilities.json')), 'an unprobed answer is not cached');
});
