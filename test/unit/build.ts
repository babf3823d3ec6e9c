// Pure parts of the build: --target options, project names, jobs, manifest merging.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { autoJobs, defaultWorkspace, slug } from '../../lib/build/index.js';
import { type Manifest, type ManifestWheel, mergeManifest } from '../../lib/wheel/manifest.js';
import { declaredName, gitCacheDir } from '../../lib/build/sources.js';
import { parseTargetArg } from '../../lib/targets/spec.js';
import { planTarget } from '../../lib/targets/index.js';
import { GiB } from '../../lib/core/units.js';

test('--target options follow the spec after commas; a bare part continues the value', (t) => {
  t.deepEqual(parseTargetArg('torch@1.1.0'), { spec: { kind: 'recipe', name: 'torch', version: '1.1.0' }, options: {} });
  t.deepEqual(parseTargetArg('onnxruntime@1.23.0,ep=qnn,qnn_home=/opt/qairt').options, { ep: 'qnn', qnn_home: '/opt/qairt' });
  const b = parseTargetArg('local:./b,needs=a,c,import=bee', '/src');
  t.deepEqual(b.spec, { kind: 'local', path: '/src/b' });
  t.deepEqual(b.options, { needs: 'a,c', import: 'bee' });
  t.deepEqual(parseTargetArg('local:./b,needs=a,needs=c', '/src').options, { needs: 'a,c' });
  // A comma inside a path is kept when no KEY= follows it.
  t.deepEqual(parseTargetArg('local:/x/a,b', '/').spec, { kind: 'local', path: '/x/a,b' });
  t.deepEqual(parseTargetArg('git:https://h/r.git@v1,submodules=false').spec, { kind: 'git', url: 'https://h/r.git', ref: 'v1' });
});

test('a project directory declares its name in pyproject.toml, setup.cfg or setup.py', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-name-'));
  t.is(declaredName(dir), undefined);
  fs.writeFileSync(path.join(dir, 'setup.py'), 'from setuptools import setup\nsetup(\n    name="from-setup-py",\n    version="1",\n)\n');
  t.is(declaredName(dir), 'from-setup-py');
  fs.writeFileSync(path.join(dir, 'setup.cfg'), '[options]\nname = wrong\n[metadata]\nname = from-cfg\nversion = 1\n');
  t.is(declaredName(dir), 'from-cfg');
  fs.writeFileSync(path.join(dir, 'pyproject.toml'), '[build-system]\nrequires = ["setuptools"]\nname = "wrong"\n\n[project]\nversion = "1"\nname = "from-pyproject"\n');
  t.is(declaredName(dir), 'from-pyproject');
  t.is(declaredName(path.resolve('test/fixtures/py/cext-hello')), 'imgbuild-hello');
  fs.rmSync(dir, { recursive: true });
});

test('--jobs auto: the CPUs, fewer when memory per job under emulation does not fit', (t) => {
  const torch = planTarget({ kind: 'recipe', name: 'torch', version: '1.1.0' }, { jobs: 1, python: '3.7', arch: 'aarch64' });
  const local = planTarget({ kind: 'local', path: '/src/x' }, { jobs: 1, python: '3.11', arch: 'aarch64' });
  t.is(autoJobs([local], 8, 64 * GiB), 8);
  t.is(autoJobs([torch], 8, 10 * GiB), 4, 'torch takes 2 GiB a job: 80% of 10 GiB fits 4');
  t.is(autoJobs([torch, local], 2, 24 * GiB), 2);
  t.is(autoJobs([torch], 4, 1 * GiB), 1, 'never less than one');
});

test('target slugs are safe file names', (t) => {
  t.is(slug(planTarget({ kind: 'recipe', name: 'torch', version: '1.1.0' }, { jobs: 1, python: '3.7', arch: 'aarch64' })), 'torch-1.1.0');
  t.is(slug(planTarget({ kind: 'local', path: '/a/b c' }, { jobs: 1, python: '3.11', arch: 'aarch64', recipeOptions: { name: 'x/../y' } })), 'x_.._y');
});

test('git cache directories: one per URL, named after the repository', (t) => {
  const a = gitCacheDir('/c', 'https://github.com/pytorch/pytorch.git');
  t.regex(a, /^\/c\/git\/pytorch-[0-9a-f]{12}$/);
  t.not(a, gitCacheDir('/c', 'https://mirror.example/pytorch/pytorch.git'));
  t.is(a, gitCacheDir('/c', 'https://github.com/pytorch/pytorch.git'));
});

test('manifest merge: earlier wheels stay while their file exists and this run did not replace them', (t) => {
  const wheel = (file: string, target: string) => ({ file, target }) as ManifestWheel;
  const old = { version: 1, image: {}, wheels: [wheel('torch.whl', 'torch@1.1.0'), wheel('gone.whl', 'x'), wheel('vision.whl', 'old')] } as unknown as Manifest;
  const next = { version: 1, image: {}, wheels: [wheel('vision.whl', 'torchvision@0.4.0')] } as unknown as Manifest;
  const merged = mergeManifest(old, next, (f) => f !== 'gone.whl');
  t.deepEqual(merged.wheels.map((w) => [w.file, w.target]), [['torch.whl', 'torch@1.1.0'], ['vision.whl', 'torchvision@0.4.0']]);
  t.deepEqual(mergeManifest(undefined, next, () => true).wheels, next.wheels);
});

test('default workspaces: one per image path, named after the image, safe for overlayfs', (t) => {
  const a = defaultWorkspace('/var/cache/imgbuild', '/imgs/pynq z2,v3.img');
  t.regex(a, /^\/var\/cache\/imgbuild\/work\/pynq_z2_v3\.img-[0-9a-f]{10}$/);
  t.not(a, defaultWorkspace('/var/cache/imgbuild', '/other/pynq z2,v3.img'));
  t.is(a, defaultWorkspace('/var/cache/imgbuild', '/imgs/pynq z2,v3.img'));
});
