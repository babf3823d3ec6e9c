// Pure parts of the build: --target options, project names, jobs, manifest merging.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import test from 'ava';
import { spaceReserve } from '../../lib/build/space-guard.js';
import { checkWritable, defangTree } from '../../lib/build/workspace.js';
import { makeDirs } from '../../lib/core/dirs.js';
import { execa } from 'execa';
import { autoJobs, defaultWorkspace, slug } from '../../lib/build/index.js';
import { type Manifest, type ManifestWheel, mergeManifest } from '../../lib/wheel/manifest.js';
import { archiveTop, declaredName, declaredNameInArchive } from '../../lib/build/project-meta.js';
import { createContext } from '../../lib/core/context.js';
import { aptAvailable, aptCandidates, aptForMissingPins, parseUnmet, requirementName } from '../../lib/build/requirements.js';
import { dependencyClosure, ownerOf, parseWhere } from '../../lib/build/needs.js';
import { chrootPipEnv, hostPipArgs, parsePipConf, resolvePip } from '../../lib/build/pip-sources.js';
import { gitCacheDir } from '../../lib/build/sources.js';
import { PreconditionError, UsageError } from '../../lib/core/errors.js';
import { parseTargetArg } from '../../lib/targets/spec.js';
import { planTarget } from '../../lib/targets/index.js';
import { GiB, parseDuration } from '../../lib/core/units.js';

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

test('an archive of any name declares its name inside: PKG-INFO, pyproject, setup.cfg, setup.py; with one top directory or none', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-archive-name-'));
  const ctx = createContext({ stateDir: path.join(dir, 'state'), cacheDir: path.join(dir, 'cache') });
  const tree = path.join(dir, 'markupsafe-2.1.2');
  fs.mkdirSync(tree);
  fs.writeFileSync(path.join(tree, 'setup.cfg'), '[metadata]\nname = MarkupSafe\n');
  await execa('tar', ['-czf', path.join(dir, 'markupsafe_2.1.2.orig.tar.gz'), 'markupsafe-2.1.2'], { cwd: dir });
  t.is(await declaredNameInArchive(ctx, path.join(dir, 'markupsafe_2.1.2.orig.tar.gz')), 'MarkupSafe');
  fs.writeFileSync(path.join(tree, 'PKG-INFO'), 'Metadata-Version: 2.1\nName: MarkupSafe-Sdist\nVersion: 2.1.2\n');
  await execa('tar', ['-cJf', path.join(dir, 'v2.1.2.tar.xz'), '.'], { cwd: tree });
  t.is(await declaredNameInArchive(ctx, path.join(dir, 'v2.1.2.tar.xz')), 'MarkupSafe-Sdist', 'no top directory: the files at the top');
  await execa('python3', ['-c', 'import shutil, sys; shutil.make_archive(sys.argv[1], "zip", sys.argv[2], "markupsafe-2.1.2")', path.join(dir, 'release'), dir]);
  t.is(await declaredNameInArchive(ctx, path.join(dir, 'release.zip')), 'MarkupSafe-Sdist');
  fs.writeFileSync(path.join(dir, 'junk.tar.gz'), 'not a tarball');
  t.is(await declaredNameInArchive(ctx, path.join(dir, 'junk.tar.gz')), undefined);
  t.is(archiveTop(['a/', 'a/setup.py', './a/b']), 'a');
  t.is(archiveTop(['./', './setup.py', './pkg/__init__.py']), '');
  t.is(archiveTop(['a', 'b/c']), '');
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

test('unmet build requirements: the front end\'s report, the names, and the Debian packages that may provide them', (t) => {
  const out = 'pip says no\nimgbuild-unmet-requirements: [{"requirement": "Cython>=3.0; python_version > \\"3\\"", "installed": "0.29.36", "why": "0.29.36 is installed"}]\n';
  t.deepEqual(parseUnmet(out), [{ requirement: 'Cython>=3.0; python_version > "3"', installed: '0.29.36', why: '0.29.36 is installed' }]);
  t.is(parseUnmet('no marker here'), undefined);
  t.is(parseUnmet('imgbuild-unmet-requirements: {broken'), undefined);
  t.is(requirementName('Cython>=3.0; python_version > "3"'), 'Cython');
  t.is(requirementName('setuptools_scm[toml] >= 6.2'), 'setuptools_scm');
  t.deepEqual(aptCandidates('Cython'), ['cython3', 'python3-cython']);
  t.deepEqual(aptCandidates('setuptools_scm'), ['python3-setuptools-scm']);
  t.deepEqual(aptCandidates('flit_core'), ['python3-flit-core', 'flit'], 'bookworm has flit_core in flit');
  t.deepEqual(aptCandidates('flit.core'), ['python3-flit-core', 'flit']);
  t.deepEqual(aptCandidates('Pillow'), ['python3-pil', 'python3-pillow'], 'torchvision\'s Pillow is Debian\'s python3-pil');
  t.deepEqual(aptCandidates('PyYAML'), ['python3-yaml', 'python3-pyyaml']);
  const policy = 'cython3:\n  Installed: (none)\n  Candidate: 0.29.36-1\n  Version table:\n     0.29.36-1 500\npython3-cython:\n  Installed: (none)\n  Candidate: (none)\npython3-setuptools-scm:\n  Installed: 7.1.0-3\n  Candidate: 7.1.0-3\n';
  t.deepEqual([...aptAvailable(policy)].sort(), ['cython3', 'python3-setuptools-scm']);
});

test('offline, a recipe\'s pip requirements the image lacks are looked up in its apt: only those not installed at all, each by its Debian name', async (t) => {
  const asked: string[][] = [];
  const exec = async (argv: string[]) => {
    asked.push(argv);
    const out = argv[0] === 'python3'
      ? `imgbuild-checked-requirements: ${JSON.stringify([{ requirement: 'numpy>=1.20', installed: null, why: 'not installed' }, { requirement: 'protobuf>=3.20.2', installed: '3.12.4', why: '3.12.4 is installed' }, { requirement: 'typing_extensions', installed: null, why: 'not installed' }, { requirement: 'six', installed: null, why: 'needed by protobuf, not installed' }, { requirement: 'onnx-tools', installed: null, why: 'not installed' }])}`
      : 'python3-numpy:\n  Installed: (none)\n  Candidate: 1:1.24.2-1\npython3-typing-extensions:\n  Installed: (none)\n  Candidate: 4.4.0-1\npython3-onnx-tools:\n  Installed: (none)\n  Candidate: (none)\n';
    return { exitCode: 0, stdout: out, stderr: '', all: out } as never;
  };
  const found = await aptForMissingPins(exec, ['numpy>=1.20', 'protobuf>=3.20.2', 'typing_extensions', 'onnx-tools'], '/dev/null');
  t.deepEqual(found, { missing: ['numpy', 'typing_extensions', 'onnx-tools'], apt: ['python3-numpy', 'python3-typing-extensions'] });
  t.deepEqual(asked[1], ['apt-cache', 'policy', 'python3-numpy', 'python3-typing-extensions', 'python3-onnx-tools']);
  t.deepEqual(await aptForMissingPins(exec, [], '/dev/null'), { missing: [], apt: [] });
});

test('where pip looks: flags, else the host\'s PIP_* variables, else its pip.conf; find-links must be directories', (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-pip-'));
  const none = resolvePip({}, dir, {}, {});
  t.deepEqual(none, { offline: false, extraIndexUrls: [], findLinks: [], from: {} });
  const conf = parsePipConf('[global]\nindex-url = https://mirror.example/simple\nextra-index-url =\n    https://www.piwheels.org/simple\n    https://other.example/simple\n[freeze]\nindex-url = https://ignored.example\n; comment\n');
  t.deepEqual(conf, { 'index-url': 'https://mirror.example/simple', 'extra-index-url': 'https://www.piwheels.org/simple https://other.example/simple' });
  const fromConf = resolvePip({}, dir, {}, { ...conf, 'index-url@': '/etc/pip.conf', 'extra-index-url@': '/etc/pip.conf' });
  t.is(fromConf.indexUrl, 'https://mirror.example/simple');
  t.deepEqual(fromConf.extraIndexUrls, ['https://www.piwheels.org/simple', 'https://other.example/simple']);
  t.deepEqual(fromConf.from, { 'index-url': '/etc/pip.conf', 'extra-index-url': '/etc/pip.conf' });
  const fromEnv = resolvePip({}, dir, { PIP_INDEX_URL: 'https://proxy.example/simple', PIP_NO_INDEX: 'true' }, conf);
  t.is(fromEnv.indexUrl, 'https://proxy.example/simple');
  t.true(fromEnv.offline);
  t.is(fromEnv.from['index-url'], 'PIP_INDEX_URL');
  const flags = resolvePip({ offline: true, indexUrl: 'https://flag.example/simple', findLinks: ['.'] }, dir, { PIP_INDEX_URL: 'https://proxy.example/simple' }, conf);
  t.is(flags.indexUrl, 'https://flag.example/simple');
  t.deepEqual(flags.findLinks, [dir]);
  t.is(flags.from['index-url'], '--index-url');
  t.is(flags.from['extra-index-url'], 'pip.conf', 'each setting on its own: the one no flag gives comes from pip.conf');
  t.deepEqual(chrootPipEnv(flags), { PIP_FIND_LINKS: '/workspace/pip /workspace/.imgbuild/find-links/0', PIP_NO_INDEX: '1', PIP_INDEX_URL: 'https://flag.example/simple', PIP_EXTRA_INDEX_URL: 'https://www.piwheels.org/simple https://other.example/simple' });
  t.deepEqual(hostPipArgs({ ...flags, extraIndexUrls: [] }), ['--no-index', '--index-url', 'https://flag.example/simple', '--find-links', dir]);
  t.throws(() => resolvePip({ findLinks: ['missing'] }, dir, {}, {}), { instanceOf: PreconditionError, message: /--find-links .*missing .* is not a directory/ });
  t.throws(() => resolvePip({ indexUrl: 'piwheels.org' }, dir, {}, {}), { instanceOf: UsageError, message: /is not an http\(s\) or file URL/ });
  fs.mkdirSync(path.join(dir, 'my wheels'));
  t.deepEqual(resolvePip({ findLinks: ['my wheels'] }, dir, {}, {}).findLinks, [path.join(dir, 'my wheels')], 'a flag\'s directory is taken whole, space and all');
  fs.rmSync(dir, { recursive: true });
});

test('the board\'s packages: a runtime package with everything installed it depends on (alternatives, versions and arch qualifiers read)', (t) => {
  const status = [
    'python3-torch\tlibtorch1.13 (= 1.13.1+dfsg-4), python3-numpy (>= 1:1.22.0), libc6 (>= 2.34), ',
    'libtorch1.13\tlibblas3 | libblas.so.3, libgomp1 (>= 4.9), libc6 (>= 2.35), ',
    'libblas3\tlibc6 (>= 2.29), ',
    'libgomp1\tgcc-12-base (= 12.2.0-14), libc6 (>= 2.34), ',
    'python3-numpy\tpython3:any, libc6 (>= 2.27), ',
    'libc6\tlibgcc-s1, ',
    'unrelated\tlibc6, ',
  ].join('\n');
  t.deepEqual(dependencyClosure(status, ['python3-torch']).sort(), ['libblas3', 'libc6', 'libgomp1', 'libtorch1.13', 'python3-numpy', 'python3-torch']);
  t.deepEqual(dependencyClosure(status, ['not-installed']), ['not-installed'], 'a package dpkg does not have stays, so dpkg-query -L names it');
  t.deepEqual(parseWhere('noise\nimgbuild-installed-distributions: {"torch": {"version": "1.13.0a0+gitunknown", "path": "/usr/lib/python3/dist-packages/torch-1.13.0a0+gitunknown.egg-info"}}\n'), { torch: { version: '1.13.0a0+gitunknown', path: '/usr/lib/python3/dist-packages/torch-1.13.0a0+gitunknown.egg-info' } });
  t.deepEqual(parseWhere('imgbuild-installed-distributions: {broken'), {});
});

test('the package that owns a distribution, from dpkg-query -S among other output', (t) => {
  const file = '/usr/lib/python3/dist-packages/torch-1.13.0a0+gitunknown.egg-info';
  t.is(ownerOf(`noise\npython3-torch: ${file}\n`, file), 'python3-torch');
  t.is(ownerOf(`python3-a, python3-b: ${file}`, file), 'python3-a');
  t.is(ownerOf(`dpkg-query: no path found matching pattern ${file}`, file), undefined);
});

test('--timeout durations: seconds, minutes, hours; anything else is refused by name', (t) => {
  t.is(parseDuration('90s'), 90_000);
  t.is(parseDuration('45m'), 2_700_000);
  t.is(parseDuration('1.5h'), 5_400_000);
  t.is(parseDuration('30'), 30_000);
  t.throws(() => parseDuration('soon'), { message: /soon is not a duration/ });
  t.throws(() => parseDuration('0s'), { message: /at least a second/ });
});

test('the space guard keeps 5% of the workspace\'s filesystem free, at least 64 MiB and at most 1 GiB', (t) => {
  t.is(spaceReserve(1200 * 2 ** 20), 64 * 2 ** 20);
  t.is(spaceReserve(10 * 2 ** 30), Math.floor(10 * 2 ** 30 * 0.05));
  t.is(spaceReserve(2 ** 40), 2 ** 30);
});

test('--out under /proc: refused at once, naming the kernel interface (Node\'s recursive mkdir would spin there for ever)', (t) => {
  t.throws(() => checkWritable('/proc/foo', '--out'), { instanceOf: PreconditionError, message: /--out \/proc\/foo is not writable: \/proc is on proc, a kernel interface that takes no files/ });
  t.throws(() => makeDirs('/proc/foo/bar'), { code: 'ENOENT' });
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-dirs-'));
  t.teardown(() => fs.rmSync(base, { recursive: true, force: true }));
  makeDirs(path.join(base, 'a', 'b'));
  makeDirs(path.join(base, 'a', 'b'));
  t.true(fs.statSync(path.join(base, 'a', 'b')).isDirectory());
  fs.writeFileSync(path.join(base, 'file'), '');
  t.throws(() => makeDirs(path.join(base, 'file', 'x')), { code: 'ENOTDIR' });
});

test('a kept build tree is made harmless: setuid and setgid bits cleared, device nodes and FIFOs removed, nothing followed through a link', async (t) => {
  const ws = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-defang-'));
  const outside = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-defang-outside-'));
  t.teardown(() => {
    fs.rmSync(ws, { recursive: true, force: true });
    fs.rmSync(outside, { recursive: true, force: true });
  });
  const build = path.join(ws, 'build', 'src');
  fs.mkdirSync(build, { recursive: true });
  fs.writeFileSync(path.join(build, 'suid'), '');
  fs.chmodSync(path.join(build, 'suid'), 0o4755);
  fs.writeFileSync(path.join(build, 'sgid'), '');
  fs.chmodSync(path.join(build, 'sgid'), 0o2750);
  fs.writeFileSync(path.join(build, 'plain'), '');
  fs.chmodSync(path.join(build, 'plain'), 0o755);
  fs.writeFileSync(path.join(outside, 'host-suid'), '');
  fs.chmodSync(path.join(outside, 'host-suid'), 0o4755);
  fs.symlinkSync(path.join(outside, 'host-suid'), path.join(build, 'link'));
  const root = process.getuid?.() === 0;
  if (root) {
    await execa('mknod', [path.join(build, 'disk'), 'b', '7', '0']);
    await execa('mkfifo', [path.join(build, 'fifo')]);
  }
  t.is(defangTree(ws, ['build', 'overlay']), root ? 4 : 2);
  t.is(fs.statSync(path.join(build, 'suid')).mode & 0o7777, 0o755);
  t.is(fs.statSync(path.join(build, 'sgid')).mode & 0o7777, 0o750);
  t.is(fs.statSync(path.join(build, 'plain')).mode & 0o7777, 0o755);
  t.is(fs.statSync(path.join(outside, 'host-suid')).mode & 0o7777, 0o4755, 'the link was not followed');
  t.false(fs.existsSync(path.join(build, 'disk')));
  t.false(fs.existsSync(path.join(build, 'fifo')));
});
