// The command under an old Node: one line and exit 3, before any bundled module runs; and
// bin/imgbuild, which finds a Node >= 22.12 (PATH's, else /opt/imgbuild/node) by itself.
import fs from 'node:fs';
import test from 'ava';
import { execa, execaSync } from 'execa';
import { unless } from '../helpers/tools.js';

// A Node older than 22.12 on this host, if there is one (this kind of machine ships 20).
const oldNode = ['/usr/bin/node', '/usr/local/bin/node', '/usr/bin/nodejs'].find((p) => {
  if (!fs.existsSync(p)) return false;
  const r = execaSync(p, ['-p', 'process.versions.node'], { reject: false });
  const [a = 99, b = 0] = String(r.stdout).split('.').map(Number);
  return r.exitCode === 0 && (a < 22 || (a === 22 && b < 12));
});

unless(oldNode ? undefined : 'this host has no Node older than 22.12 to run it with')('an old Node running dist/imgbuild.mjs: one line naming the version and the fix, exit 3', async (t) => {
  const r = await execa(oldNode!, ['dist/imgbuild.mjs', '--version'], { reject: false, all: true });
  t.is(r.exitCode, 3);
  t.regex(String(r.all).trim(), /^imgbuild: Node >= 22\.12 is required \(this is v\d+\.\d+\.\d+\); scripts\/setup-host\.sh installs one under \/opt\/imgbuild\/node$/);
});

test('bin/imgbuild runs the command under a Node >= 22.12', async (t) => {
  const r = await execa('sh', ['bin/imgbuild', '--version'], { reject: false, all: true });
  t.is(r.exitCode, 0, String(r.all));
  t.is(String(r.stdout).trim(), JSON.parse(fs.readFileSync('package.json', 'utf8')).version);
});
