// The command under an old Node: one line and exit 3, before any bundled module runs; and
// bin/imgbuild, which finds a Node >= 22.12 (PATH's, else /opt/imgbuild/node) by itself.
import fs from 'node:fs';
import test from 'ava';
import { execa } from 'execa';

async function versionOf(node: string): Promise<[number, number] | undefined> {
  const r = await execa(node, ['-p', 'process.versions.node'], { reject: false });
  if (r.exitCode !== 0) return undefined;
  const [a = 0, b = 0] = String(r.stdout).split('.').map(Number);
  return [a, b];
}

test('an old Node running dist/imgbuild.mjs: one line naming the version and the fix, exit 3', async (t) => {
  let found: string | undefined;
  for (const p of ['/usr/bin/node', '/usr/local/bin/node', '/usr/bin/nodejs']) {
    const v = fs.existsSync(p) ? await versionOf(p) : undefined;
    if (v && (v[0] < 22 || (v[0] === 22 && v[1] < 12))) found = p;
  }
  if (!found) {
    t.log('skipped: this host has no Node older than 22.12 to run it with');
    t.pass();
    return;
  }
  const r = await execa(found, ['dist/imgbuild.mjs', '--version'], { reject: false, all: true });
  t.is(r.exitCode, 3);
  t.regex(String(r.all).trim(), /^imgbuild: Node >= 22\.12 is required \(this is v\d+\.\d+\.\d+\); scripts\/setup-host\.sh installs one under \/opt\/imgbuild\/node$/);
});

test('bin/imgbuild runs the command under a Node >= 22.12', async (t) => {
  const r = await execa('sh', ['bin/imgbuild', '--version'], { reject: false, all: true });
  t.is(r.exitCode, 0, String(r.all));
  t.is(String(r.stdout).trim(), JSON.parse(fs.readFileSync('package.json', 'utf8')).version);
});
