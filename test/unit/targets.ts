import test from 'ava';
import { UsageError } from '../../lib/core/errors.js';
import { parseTargetArg, parseTargetSpec } from '../../lib/targets/spec.js';
import { pinBreaks } from '../../lib/targets/pins.js';
import { cmakeForRelease, listRecipes, needHint, orderPlans, pairingWarnings, planTarget, recipes } from '../../lib/targets/index.js';
import { guessProject } from '../../lib/targets/local.js';
import { pairedTorch, pairedVision } from '../../lib/targets/torchvision.js';
import type { PlanOptions, TargetPlan } from '../../lib/targets/types.js';

const o: PlanOptions = { jobs: 6, python: '3.7', arch: 'aarch64' };
const plan = (spec: string, extra: Partial<PlanOptions> = {}) => planTarget(parseTargetSpec(spec, '/work'), { ...o, ...extra });

test('torch@1.1.0: the PYNQ guide environment, apt packages, source and command', (t) => {
  const p = plan('torch@1.1.0');
  t.like(p.env, {
    USE_CUDA: 'OFF',
    USE_MKLDNN: 'OFF',
    USE_NNPACK: 'OFF',
    USE_QNNPACK: 'OFF',
    USE_PYTORCH_QNNPACK: 'OFF',
    USE_OPENCV: '1',
    BUILD_CAFFE2_MOBILE: 'OFF',
    BUILD_CAFFE2_OPS: 'OFF',
    BUILD_CUSTOM_PROTOBUF: 'OFF',
    BUILD_TEST: '0',
    MAX_JOBS: '6',
    CMAKE_BUILD_PARALLEL_LEVEL: '6',
    PYTORCH_BUILD_VERSION: '1.1.0',
  });
  t.false('USE_DISTRIBUTED' in p.env, 'torch.distributed stays enabled');
  t.false('NO_DISTRIBUTED' in p.env);
  for (const pkg of ['protobuf-compiler', 'libprotobuf-dev', 'libopencv-dev', 'libopenmpi-dev', 'cmake']) t.true(p.apt.includes(pkg), pkg);
  t.deepEqual(p.source, { kind: 'git', url: 'https://github.com/pytorch/pytorch.git', ref: 'v1.1.0', submodules: true });
  t.deepEqual(p.commands, [['python3', 'setup.py', 'bdist_wheel']]);
  t.is(p.wheelDir, 'dist');
  t.is(p.importName, 'torch');
  t.is(p.id, 'torch@1.1.0');
  t.deepEqual(p.needs, []);
  t.true(p.pip.includes('pyyaml<6'));
  t.true(p.pip.includes('numpy<1.20'));
  t.true(p.pip.some((r) => r.startsWith('setuptools')));
  t.deepEqual(p.warnings, [], 'Python 3.7 is in the known range');
  t.true(p.diskBytes > 8 * 1024 ** 3);
});

test('torch jobs follow the options', (t) => {
  t.is(plan('torch@1.1.0', { jobs: 2 }).env.MAX_JOBS, '2');
  t.throws(() => plan('torch@1.1.0', { jobs: 0 }), { instanceOf: UsageError });
});

test('torch@1.5.0 keeps QNNPACK off and says why (pytorch#33124)', (t) => {
  const p = plan('torch@1.5.0');
  t.is(p.env.USE_QNNPACK, 'OFF');
  t.is(p.env.USE_PYTORCH_QNNPACK, 'OFF');
  t.true(p.notes.some((n) => n.includes('33124')));
  t.false(plan('torch@1.1.0').notes.some((n) => n.includes('33124')));
  t.true(plan('torch@1.5.1').notes.some((n) => n.includes('33124')));
});

test('torch on a Python outside the known range warns and names versions that fit', (t) => {
  const p = plan('torch@1.1.0', { python: '3.11' });
  t.is(p.warnings.length, 1);
  t.regex(p.warnings[0]!, /3\.5 to 3\.7.*3\.11.*2\.0\.0/);
});

test('bare torch means the default version', (t) => {
  const p = plan('torch');
  t.is(p.version, recipes.torch!.defaultVersion);
  t.is(p.id, `torch@${recipes.torch!.defaultVersion}`);
});

test('torchvision@0.4.0: Pillow<7, needs torch, pairs with torch 1.2.0 and the guide\'s 1.1.0', (t) => {
  const p = plan('torchvision@0.4.0');
  t.true(p.pip.includes('Pillow<7'));
  t.deepEqual(p.needs, ['torch']);
  t.deepEqual(p.source, { kind: 'git', url: 'https://github.com/pytorch/vision.git', ref: 'v0.4.0', submodules: false });
  t.deepEqual(p.commands, [['python3', 'setup.py', 'bdist_wheel']]);
  t.is(p.importName, 'torchvision');
  t.is(p.env.MAX_JOBS, '6');
  t.deepEqual(p.pairsWith, { torch: ['1.2.0', '1.1.0'] });
  t.true(p.notes.some((n) => n.includes('1.1.0') && n.includes('1.2.0')));
  t.false(plan('torchvision@0.5.0').pip.includes('Pillow<7'));
});

test('torchvision/torch pairing table', (t) => {
  t.is(pairedTorch('0.3.0'), '1.1.0');
  t.is(pairedTorch('0.4.0'), '1.2.0');
  t.is(pairedTorch('0.4.1'), '1.3.0');
  t.is(pairedTorch('0.4.2'), '1.3.1');
  t.is(pairedTorch('0.5.0'), '1.4.0');
  t.is(pairedTorch('0.6.0'), '1.5.0');
  t.deepEqual(pairedVision('1.10.0'), ['0.11.0', '0.11.1']);
  t.is(pairedTorch('9.9.9'), undefined);
});

test('pairing warnings: mismatched torch, built or supplied', (t) => {
  const tv = plan('torchvision@0.6.0', { python: '3.8' });
  t.deepEqual(pairingWarnings([plan('torch@1.5.0', { python: '3.8' }), tv]), []);
  const bad = pairingWarnings([plan('torch@1.1.0'), tv]);
  t.is(bad.length, 1);
  t.regex(bad[0]!, /torchvision@0\.6\.0 is made for torch 1\.5\.0, but torch@1\.1\.0 provides torch 1\.1\.0/);
  t.deepEqual(pairingWarnings([plan('torch@1.1.0'), plan('torchvision@0.4.0')]), [], 'the guide\'s pairing is accepted');
  t.deepEqual(pairingWarnings([tv], [{ name: 'torch', version: '1.5.0a0+abc' }]), []);
  t.is(pairingWarnings([tv], [{ name: 'torch', version: '1.4.0' }]).length, 1);
});

test('onnx@1.11.0: protobuf from the image (shared), ONNX_ML, pins and the wheel front end', (t) => {
  const p = plan('onnx@1.11.0');
  t.deepEqual(p.apt, ['protobuf-compiler', 'libprotobuf-dev', 'cmake', 'pybind11-dev']);
  t.true(p.pip.includes('protobuf<4'));
  t.true(p.pip.includes('numpy<1.24'));
  t.like(p.env, { ONNX_ML: '1', CMAKE_ARGS: '-DONNX_USE_PROTOBUF_SHARED_LIBS=ON', MAX_JOBS: '6' });
  t.deepEqual(p.commands, [['python3', '/workspace/.imgbuild/build-wheel.py', 'dist', '.']]);
  t.deepEqual(p.source, { kind: 'git', url: 'https://github.com/onnx/onnx.git', ref: 'v1.11.0', submodules: true });
  t.is(p.wheelDir, 'dist');
  t.is(p.importName, 'onnx');
  t.regex(p.smokeTest?.python ?? '', /checker\.check_model\(model\)[\s\S]*infer_shapes[\s\S]*except checker\.ValidationError/);
  t.true(p.notes.some((n) => n.includes('libprotobuf')));
});

test('onnxruntime@1.11.0: build.sh flags, wheel dir, cmake from pip when apt\'s is too old', (t) => {
  const p = plan('onnxruntime@1.11.0', { jobs: 4, aptCmake: '3.16.3' });
  t.is(p.commands.length, 1);
  const argv = p.commands[0]!;
  t.is(argv[0], './build.sh');
  for (const flag of ['--build_shared_lib', '--build_wheel', '--skip_tests']) t.true(argv.includes(flag), flag);
  t.deepEqual(argv.slice(1, 3), ['--config', 'Release']);
  t.is(argv[argv.indexOf('--parallel') + 1], '4');
  t.false(argv.includes('--allow_running_as_root'), '1.11 has no such flag and would reject it');
  t.false(argv.includes('--compile_no_warning_as_error'));
  t.true(argv.includes('onnxruntime_DEV_MODE=OFF'));
  t.true(argv.includes('onnxruntime_BUILD_UNIT_TESTS=OFF'));
  t.is(p.wheelDir, 'build/Linux/Release/dist');
  t.is(p.importName, 'onnxruntime');
  t.is(p.name, 'onnxruntime');
  t.deepEqual(p.apt, ['cmake']);
  t.true(p.pip.includes('cmake>=3.18,<4'));
  t.false(plan('onnxruntime@1.11.0', { aptCmake: '3.18.4' }).pip.some((r) => r.startsWith('cmake')));
  t.true(plan('onnxruntime@1.11.0').pip.includes('cmake>=3.18,<4'), 'unknown apt cmake counts as too old');
});

test('onnxruntime build-arg=FLAG (repeatable) goes on to build.sh before the cmake defines; a non-flag is refused', (t) => {
  const argv = plan('onnxruntime@1.16.3', { python: '3.11', recipeOptions: { 'build-arg': '--use_dnnl,--cmake_extra_defines=onnxruntime_USE_X=ON' } }).commands[0]!;
  t.true(argv.indexOf('--use_dnnl') > 0 && argv.indexOf('--use_dnnl') < argv.indexOf('--cmake_extra_defines'));
  t.true(argv.includes('--cmake_extra_defines=onnxruntime_USE_X=ON'));
  t.throws(() => plan('onnxruntime@1.16.3', { python: '3.11', recipeOptions: { 'build-arg': 'use_dnnl' } }), { instanceOf: UsageError, message: /build-arg=use_dnnl is not a build\.sh flag/ });
  t.deepEqual(parseTargetArg('onnxruntime@1.16.3,build-arg=--use_dnnl,build-arg=--x', '/').options, { 'build-arg': '--use_dnnl,--x' });
});

test('onnxruntime 1.15 and later run as root with --allow_running_as_root (earlier build.py rejects the flag)', (t) => {
  const argv = plan('onnxruntime@1.16.3', { python: '3.11', aptCmake: '3.25.1' }).commands[0]!;
  t.true(argv.includes('--allow_running_as_root'));
  t.false(plan('onnxruntime@1.14.1', { python: '3.10' }).commands[0]!.includes('--allow_running_as_root'));
  t.true(plan('onnxruntime@1.14.1', { python: '3.10' }).commands[0]!.includes('--compile_no_warning_as_error'));
  t.true(argv.includes('--compile_no_warning_as_error'));
  t.true(plan('onnxruntime@1.16.3', { python: '3.11', aptCmake: '3.25.1' }).pip.includes('cmake>=3.26,<4'));
});

test('onnxruntime ep=qnn: onnxruntime_qnn on aarch64 only, needs qnn_home (a host directory, bound read-only), its provider checked in the wheel', (t) => {
  const p = plan('onnxruntime@1.23.0', { python: '3.12', recipeOptions: { ep: 'qnn', qnn_home: '/opt/qairt/2.31' } });
  const argv = p.commands[0]!;
  t.is(argv[argv.indexOf('--use_qnn') + 1], '--qnn_home');
  t.is(argv[argv.indexOf('--qnn_home') + 1], '/workspace/.imgbuild/qnn-sdk');
  t.deepEqual(p.binds, [{ source: '/opt/qairt/2.31', inner: '/workspace/.imgbuild/qnn-sdk', what: 'the QNN SDK (qnn_home=)' }]);
  t.true(new RegExp(p.wheelMembers![0]!.pattern).test('onnxruntime/capi/libonnxruntime_providers_qnn.so'));
  t.throws(() => plan('onnxruntime@1.23.0', { python: '3.12', recipeOptions: { ep: 'qnn', qnn_home: 'qairt' } }), { instanceOf: UsageError, message: /not an absolute path/ });
  t.true(argv.includes('QNN_ARCH_ABI=aarch64-oe-linux-gcc11.2'), 'not aarch64-android, which ORT\'s cmake assumes for non-x86_64 Linux');
  t.is(p.name, 'onnxruntime_qnn');
  t.is(p.importName, 'onnxruntime');
  t.true(p.notes.some((n) => n.includes('3.12') && n.includes('aarch64')));
  t.throws(() => plan('onnxruntime@1.23.0', { arch: 'armhf', recipeOptions: { ep: 'qnn', qnn_home: '/q' } }), { instanceOf: UsageError, message: /aarch64/ });
  t.throws(() => plan('onnxruntime@1.23.0', { recipeOptions: { ep: 'qnn' } }), { instanceOf: UsageError, message: /qnn_home/ });
  t.throws(() => plan('onnxruntime@1.23.0', { recipeOptions: { ep: 'cuda' } }), { instanceOf: UsageError });
  t.throws(() => plan('onnxruntime@1.23.0', { recipeOptions: { colour: 'blue' } }), { instanceOf: UsageError, message: /no option colour/ });
});

test('an unknown version names the known versions', (t) => {
  const e = t.throws(() => plan('torch@0.9.0'), { instanceOf: UsageError });
  t.regex(e.message, /unknown torch version 0\.9\.0/);
  t.regex(e.hint ?? '', /1\.1\.0, 1\.2\.0, 1\.3\.0/);
  t.regex(t.throws(() => plan('onnxruntime@1.0.0'), { instanceOf: UsageError }).hint ?? '', /1\.11\.0/);
});

test('spec parsing: recipes', (t) => {
  t.deepEqual(parseTargetSpec('torch@1.1.0'), { kind: 'recipe', name: 'torch', version: '1.1.0' });
  t.deepEqual(parseTargetSpec('torch'), { kind: 'recipe', name: 'torch' });
  t.deepEqual(parseTargetSpec('onnxruntime@v1.11.0'), { kind: 'recipe', name: 'onnxruntime', version: '1.11.0' });
  t.deepEqual(parseTargetSpec('TorchVision@0.4.0'), { kind: 'recipe', name: 'torchvision', version: '0.4.0' });
});

test('spec parsing: local paths are made absolute, not checked', (t) => {
  t.deepEqual(parseTargetSpec('local:./proj', '/home/u'), { kind: 'local', path: '/home/u/proj' });
  t.deepEqual(parseTargetSpec('local:/src/x', '/home/u'), { kind: 'local', path: '/src/x' });
  t.deepEqual(parseTargetSpec('local:../foo-1.0.tar.gz', '/home/u/w'), { kind: 'local', path: '/home/u/foo-1.0.tar.gz' });
});

test('spec parsing: git ref is the last @ after the host part', (t) => {
  t.deepEqual(parseTargetSpec('git:https://host/x.git@v1.0'), { kind: 'git', url: 'https://host/x.git', ref: 'v1.0' });
  t.deepEqual(parseTargetSpec('git:git@host:x.git@v2'), { kind: 'git', url: 'git@host:x.git', ref: 'v2' });
  t.deepEqual(parseTargetSpec('git:https://user@host/o/x.git@main'), { kind: 'git', url: 'https://user@host/o/x.git', ref: 'main' });
  t.deepEqual(parseTargetSpec('git:ssh://git@host:22/o/x@0123abc'), { kind: 'git', url: 'ssh://git@host:22/o/x', ref: '0123abc' });
  t.deepEqual(parseTargetSpec('git:/srv/repos/x.git@release/1.2'), { kind: 'git', url: '/srv/repos/x.git', ref: 'release/1.2' });
});

test('spec parsing: errors name the spec and list the known recipes', (t) => {
  const cases = ['tensorflow@2.0', 'torch@', 'torch@latest', 'torch==1.1.0', '', 'local:', 'local:~/x', 'git:git@host:x.git', 'git:https://user@host', 'git:https://host/x.git@', 'git:https://host/x.git@a..b', '@1.0'];
  for (const spec of cases) {
    const e = t.throws(() => parseTargetSpec(spec), { instanceOf: UsageError }, spec);
    t.true(e.message.includes(`'${spec}'`), `${spec}: ${e.message}`);
    t.true(e.exitCode === 2);
    if (!spec.startsWith('local:~') && spec !== 'torch==1.1.0') t.regex(e.hint ?? '', /torch, torchvision, onnx, onnxruntime/, spec);
  }
  t.regex(t.throws(() => parseTargetSpec('torch==1.1.0'), { instanceOf: UsageError }).hint ?? '', /torch@1\.1\.0/);
});

function fake(name: string, needs: string[] = [], version?: string): TargetPlan {
  return { ...plan('local:/src/x'), id: `local:/src/${name}`, name, needs, ...(version ? { version } : {}) };
}

test('orderPlans: needs first, otherwise the order given', (t) => {
  const ids = (ps: TargetPlan[]) => ps.map((p) => p.name);
  t.deepEqual(ids(orderPlans([plan('torchvision@0.4.0'), plan('onnx@1.11.0'), plan('torch@1.1.0')])), ['torch', 'torchvision', 'onnx']);
  t.deepEqual(ids(orderPlans([fake('c', ['b']), fake('a'), fake('b', ['a'])])), ['a', 'b', 'c']);
  t.deepEqual(ids(orderPlans([fake('x'), fake('y'), fake('z')])), ['x', 'y', 'z']);
  t.deepEqual(ids(orderPlans([fake('imgbuild-second', ['imgbuild_hello']), fake('imgbuild-hello')])), ['imgbuild-hello', 'imgbuild-second'], 'names are compared PEP 503-normalised');
});

test('orderPlans: a --with-wheel may supply a need', (t) => {
  t.deepEqual(orderPlans([plan('torchvision@0.4.0')], ['torch']).map((p) => p.id), ['torchvision@0.4.0']);
});

test('orderPlans: a need nothing here provides is left to the build environment, and the plan says so', (t) => {
  const [p] = orderPlans([plan('torchvision@0.14.1')]);
  t.deepEqual(p!.fromEnvironment, ['torch']);
  t.true(p!.notes.some((n) => /^torch: no target or --with-wheel provides it, so the build environment must/.test(n)));
  t.regex(needHint(p!, 'torch'), /--target torch@1\.13\.1, --with-wheel PATH \(a torch wheel\), or apt=PKG/);
  t.is(orderPlans([plan('torchvision@0.14.1'), plan('torch@1.13.1')])[1]!.fromEnvironment, undefined);
  const e = t.throws(() => orderPlans([fake('b', ['a'])]), { instanceOf: UsageError, message: 'local:/src/b needs a, which no target builds' });
  t.regex(e.hint ?? '', /--target local:PATH \(the a project\)/, 'a needs= the user wrote names a target: not the build environment');
});

test('orderPlans: cycles, duplicates and built-and-supplied are usage errors', (t) => {
  const cyc = t.throws(() => orderPlans([fake('a', ['b']), fake('b', ['c']), fake('c', ['a'])]), { instanceOf: UsageError });
  t.regex(cyc.message, /local:\/src\/a -> local:\/src\/b -> local:\/src\/c -> local:\/src\/a/);
  t.throws(() => orderPlans([fake('a', ['a'])]), { instanceOf: UsageError, message: /need each other/ });
  t.throws(() => orderPlans([plan('torch@1.1.0'), plan('torch@1.2.0')]), { instanceOf: UsageError, message: /two targets build torch/ });
  t.throws(() => orderPlans([plan('torch@1.1.0')], ['torch']), { instanceOf: UsageError, message: /both built/ });
});

test('local: a directory, an sdist, options', (t) => {
  const d = plan('local:./cext-hello');
  t.deepEqual(d.source, { kind: 'path', path: '/work/cext-hello' });
  t.is(d.id, 'local:/work/cext-hello');
  t.is(d.name, 'cext-hello');
  t.is(d.importName, undefined, 'the modules come from the built wheel, not the name');
  t.deepEqual(d.apt, []);
  t.deepEqual(d.pip, []);
  t.deepEqual(d.commands, [['python3', '/workspace/.imgbuild/build-wheel.py', 'dist', '.']]);
  t.is(d.wheelDir, 'dist');

  const s = plan('local:/dl/Foo.Bar-2.0.1.tar.gz');
  t.is(s.name, 'Foo.Bar');
  t.is(s.version, '2.0.1');
  t.is(s.importName, undefined);
  t.deepEqual(s.commands[0]!.at(-1), './Foo.Bar-2.0.1.tar.gz');

  const named = plan('local:./cext-second', { recipeOptions: { name: 'imgbuild-second', import: 'imgbuild_second', needs: 'imgbuild-hello, other' } });
  t.is(named.name, 'imgbuild-second');
  t.is(named.importName, 'imgbuild_second');
  t.deepEqual(named.needs, ['imgbuild-hello', 'other']);
  t.throws(() => plan('local:./x', { recipeOptions: { ep: 'qnn' } }), { instanceOf: UsageError, message: /no option ep/ });
  t.throws(() => plan('local:./x-1.0-py3-none-any.whl'), { instanceOf: UsageError, message: /wheel/ });
  t.deepEqual(guessProject('imgbuild-hello'), { name: 'imgbuild-hello' });
});

test('git: source with submodules, name from the URL', (t) => {
  const p = plan('git:git@github.com:owner/My-Proj.git@v2');
  t.deepEqual(p.source, { kind: 'git', url: 'git@github.com:owner/My-Proj.git', ref: 'v2', submodules: true });
  t.is(p.id, 'git:git@github.com:owner/My-Proj.git@v2');
  t.is(p.name, 'My-Proj');
  t.is(p.importName, undefined);
  t.deepEqual(p.commands, [['python3', '/workspace/.imgbuild/build-wheel.py', 'dist', '.']]);
  t.false((plan('git:https://h/x.git@v1', { recipeOptions: { submodules: 'false' } }).source as { submodules: boolean }).submodules);
});

test('listRecipes covers every recipe and the local/git forms', (t) => {
  const list = listRecipes();
  t.deepEqual(list.map((r) => r.name), ['torch', 'torchvision', 'onnx', 'onnxruntime', 'local', 'git']);
  const torch = list.find((r) => r.name === 'torch')!;
  t.true(torch.versions.includes('1.1.0') && torch.versions.includes('1.5.1'));
  t.true('ep' in list.find((r) => r.name === 'onnxruntime')!.options);
  // Every default version is in its own table.
  for (const r of Object.values(recipes)) t.true(r.versions.some((v) => v.versions.includes(r.defaultVersion)), r.name);
});

test('apt cmake by release codename', (t) => {
  t.is(cmakeForRelease('bookworm'), '3.25.1');
  t.is(cmakeForRelease('bullseye'), '3.18.4');
  t.is(cmakeForRelease('sid'), undefined);
  t.is(cmakeForRelease(undefined), undefined);
});

test('options every target takes: apt=, env=, config=, pip=, runtime=, applied after the recipe\'s own; bad ones named', (t) => {
  const p = plan('local:./cffi', { recipeOptions: { apt: 'libffi-dev+pkg-config', env: 'A=1,B=x=y', config: '--build-option=--cpp,--build-option=-j2,setup-args=-Dx=1', pip: 'cython<3+numpy', runtime: 'libffi8' } });
  t.deepEqual(p.apt, ['libffi-dev', 'pkg-config', 'libffi8']);
  t.is(p.env.A, '1');
  t.is(p.env.B, 'x=y');
  t.deepEqual(JSON.parse(p.env.IMGBUILD_CONFIG_SETTINGS!), { '--build-option': ['--cpp', '-j2'], 'setup-args': '-Dx=1' });
  t.deepEqual(p.pip, ['cython<3', 'numpy']);
  t.deepEqual(p.runtimeApt, ['libffi8']);
  const torch = plan('torch@1.1.0', { recipeOptions: { env: 'USE_OPENCV=0', apt: 'libjpeg-dev' } });
  t.is(torch.env.USE_OPENCV, '0', 'the user\'s env wins over the recipe\'s');
  t.true(torch.apt.includes('libjpeg-dev'));
  t.throws(() => plan('torch@1.1.0', { recipeOptions: { config: 'a=b' } }), { instanceOf: UsageError, message: /config= is for targets built by a PEP 517 backend/ });
  t.throws(() => plan('local:./x', { recipeOptions: { apt: 'Bad_Name' } }), { instanceOf: UsageError, message: /"Bad_Name" is not a Debian package name/ });
  t.throws(() => plan('local:./x', { recipeOptions: { apt: '' } }), { instanceOf: UsageError, message: /no package given/ });
  t.throws(() => plan('local:./x', { recipeOptions: { env: 'NOVALUE' } }), { instanceOf: UsageError, message: /env=NOVALUE is not NAME=VALUE/ });
  t.throws(() => plan('local:./x', { recipeOptions: { env: 'IMGBUILD_X=1' } }), { instanceOf: UsageError, message: /imgbuild's own/ });
  t.throws(() => plan('local:./x', { recipeOptions: { ep: 'qnn' } }), { instanceOf: UsageError, message: /no option ep/ });
});

test('smoke=off drops a recipe\'s smoke test with a warning that names it; a target without one, or another value, is a usage error', (t) => {
  const on = plan('onnx@1.17.0');
  t.truthy(on.smokeTest);
  const off = plan('onnx@1.17.0', { recipeOptions: { smoke: 'off' } });
  t.is(off.smokeTest, undefined);
  t.true(off.warnings.some((w) => /smoke=off: the recipe's smoke test \(check_model, infer_shapes/.test(w)), off.warnings.join('\n'));
  t.truthy(plan('onnx@1.17.0', { recipeOptions: { smoke: 'on' } }).smokeTest);
  t.throws(() => plan('local:./x', { recipeOptions: { smoke: 'off' } }), { instanceOf: UsageError, message: /has no smoke test of its own/ });
  t.throws(() => plan('onnx@1.17.0', { recipeOptions: { smoke: 'no' } }), { instanceOf: UsageError, message: /smoke=no: expected off or on/ });
});

test('timeout= on a target: a duration, else a usage error naming it', (t) => {
  t.deepEqual(plan('local:./x', { recipeOptions: { timeout: '45m' } }).timeout, { ms: 45 * 60_000, text: '45m' });
  t.is(plan('local:./x').timeout, undefined);
  t.throws(() => plan('local:./x', { recipeOptions: { timeout: 'soon' } }), { instanceOf: UsageError, message: /timeout=soon is not a duration/ });
});

test('offline, only the pins a build cannot do without stay hard; the rest are preferences', (t) => {
  t.regex(pinBreaks('setuptools<60')!, /distutils/);
  t.regex(pinBreaks('numpy < 2')!, /C ABI/);
  t.regex(pinBreaks('cmake>=3.26,<4')!, /asks for cmake 3\.26 or newer/);
  t.is(pinBreaks('numpy<1.24'), undefined, 'onnx 1.12 and torch pin it for their tests, not their build');
  t.is(pinBreaks('protobuf<4'), undefined);
});
