// The npm package as a user gets it: `npm pack` of the built tree, installed into a temporary
// prefix from the registry like any package; its command and its library work from there.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { execa } from 'execa';

const manifest = JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string; scripts: Record<string, string>; os?: string[]; files: string[] };

test('the package: packed, installed into a temporary prefix, imgbuild --version and the library\'s imports work', async (t) => {
  t.timeout(180_000);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-pack-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // The tree is built already (the test command builds first); prepack would build it again.
  const pack = await execa('npm', ['pack', '--ignore-scripts', '--pack-destination', dir, '--json'], { reject: false, all: true });
  t.is(pack.exitCode, 0, String(pack.all));
  const [info] = JSON.parse(String(pack.stdout)) as { filename: string; files: { path: string }[] }[];
  const files = info!.files.map((f) => f.path);
  for (const f of ['LICENSE', 'bin/imgbuild', 'dist/imgbuild.mjs', 'dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/images/samples.js', 'lib/build/build-wheel.py', 'lib/accel/shim.c']) t.true(files.includes(f), f);
  const map = JSON.parse(fs.readFileSync('dist/lib/index.js.map', 'utf8')) as { sourcesContent?: string[] };
  t.truthy(map.sourcesContent?.[0], 'source maps carry their sources');
  t.is(manifest.scripts.prepack, 'npm run --silent build');
  t.deepEqual(manifest.os, ['linux']);

  const prefix = path.join(dir, 'inst');
  fs.mkdirSync(prefix);
  fs.writeFileSync(path.join(prefix, 'package.json'), '{"name": "uses-imgbuild", "version": "9.9.9", "private": true, "type": "module"}\n');
  const install = await execa('npm', ['install', '--no-audit', '--no-fund', path.join(dir, info!.filename)], { cwd: prefix, reject: false, all: true });
  t.is(install.exitCode, 0, String(install.all));
  const version = await execa(path.join(prefix, 'node_modules/.bin/imgbuild'), ['--version'], { cwd: prefix, reject: false, all: true });
  t.is(String(version.stdout).trim(), manifest.version, String(version.all));
  const code = "import { build, inspect, rawImage, createContext, listRecipes } from 'imgbuild'; console.log([build, inspect, rawImage, createContext].map((f) => typeof f).join(' '), listRecipes().length > 3);";
  const lib = await execa('node', ['--input-type=module', '-e', code], { cwd: prefix, reject: false, all: true });
  t.is(String(lib.stdout).trim(), 'function function function function true', String(lib.all));
  t.true(fs.existsSync(path.join(prefix, 'node_modules/imgbuild/dist/lib/index.d.ts')));
});
