// The headline recipes built for real from Debian's upstream tarballs (onnx from trixie's source,
// torchvision from bookworm's, on the image's own torch from Debian), and C extensions on two more
// releases than the host's: bullseye armhf (Python 3.9, gcc 10, pip 20.3 in the hand-over path)
// and trixie aarch64 (Python 3.13, gcc 14). Offline, wheel cache off, each wheel verified and
// smoke-tested in the chroot.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { readEntry, readZip, type ZipEntry } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { upstream } from '../helpers/upstream.js';

process.env.IMGBUILD_WHEEL_CACHE = '0';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const bookworm = sampleSync('aarch64');
const bookwormArmhf = sampleSync('armhf');
const bullseye = sampleSync('armhf', 'mbr', 'bullseye');
const trixie = sampleSync('aarch64', 'mbr', 'trixie');

interface Wheel {
  file: string;
  name: string;
  version: string;
  runtimeApt?: string[];
  aptPackages?: Record<string, string>;
  buildRequirements?: { requirement: string; version: string | null; from: string; path?: string }[];
}

function wheelOf(out: string): Wheel {
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Wheel[] };
  return m.wheels[0]!;
}

function readEntryText(file: string, e: ZipEntry): string {
  return readEntry(file, e).toString('utf8');
}

function logOf(out: string): string {
  const logs = path.join(out, 'logs');
  return fs.readdirSync(logs).map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('\n');
}

test('onnx 1.17.0 from Debian\'s orig tarball for a bookworm aarch64 image, offline: built, verified, smoke-tested; protobuf is the board\'s (--runtime-apt)', async (t) => {
  const src = await upstream('onnx/trixie');
  const out = tmpdir();
  const r = await imgbuild([bookworm, '--target', 'onnx@1.17.0', '--source', `onnx=${src.tarball}`, '--offline', '--runtime-apt', 'libprotobuf32', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.is(w.file, 'onnx-1.17.0-cp311-cp311-linux_aarch64.whl');
  t.deepEqual(w.runtimeApt, ['libprotobuf32']);
  t.regex(r.stderr, /offline: numpy, protobuf not in the image; installing python3-numpy python3-protobuf from its apt/);
  t.truthy(w.aptPackages?.['pybind11-dev'], 'pybind11 from apt: the tag tarball leaves third_party/pybind11 empty');
  t.like(w.buildRequirements?.find((b) => b.requirement === 'cmake'), { from: 'program', path: '/usr/bin/cmake' });
  t.true(readZip(path.join(out, w.file)).some((e) => /^onnx\/onnx_cpp2py_export\.cpython-311-aarch64-linux-gnu\.so$/.test(e.name)));
  t.regex(logOf(out), /onnx smoke test: check_model accepted a MatMul\+Relu model, infer_shapes gave Y \[2, 4\], a malformed model was rejected/);
});

test('onnx 1.17.0 for a bookworm armhf image (the host\'s arm-linux-gnueabihf gcc 12), offline: built, verified, smoke-tested', async (t) => {
  const src = await upstream('onnx/trixie');
  const out = tmpdir();
  const r = await imgbuild([bookwormArmhf, '--target', 'onnx@1.17.0', '--source', `onnx=${src.tarball}`, '--offline', '--runtime-apt', 'libprotobuf32', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.is(w.file, 'onnx-1.17.0-cp311-cp311-linux_armv7l.whl');
  t.true(readZip(path.join(out, w.file)).some((e) => /^onnx\/onnx_cpp2py_export\.cpython-311-arm-linux-gnueabihf\.so$/.test(e.name)));
  t.regex(logOf(out), /onnx smoke test: check_model accepted a MatMul\+Relu model, infer_shapes gave Y \[2, 4\], a malformed model was rejected/);
});

test('torchvision 0.14.1 from Debian\'s orig tarball on Debian\'s torch (offline: python3-torch and libtorch-dev from the image\'s apt): named 0.14.1, the pairing warned, nms and decode_png right', async (t) => {
  const src = await upstream('pytorch-vision');
  const out = tmpdir();
  const r = await imgbuild([bookworm, '--target', 'torchvision@0.14.1', '--source', `torchvision=${src.tarball}`, '--offline', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.is(w.file, 'torchvision-0.14.1-cp311-cp311-linux_aarch64.whl');
  t.regex(r.stderr, /warning: torchvision@0\.14\.1 is made for torch 1\.13\.1, but the build environment has torch 1\.13\.0a0\S* \(from python3-torch\)/);
  t.deepEqual(w.runtimeApt, ['python3-torch'], 'the torch that met the need is the board\'s to have');
  t.regex(logOf(out), /torchvision smoke test: nms kept boxes 0 and 2, decode_png read a 2x1 PNG/);
  t.true(readZip(path.join(out, w.file)).some((e) => /^torchvision\/_C\.so$/.test(e.name)));
});

test('a C extension on a bullseye armhf image (Python 3.9, gcc 10), and a build requirement bullseye\'s pip 20.3 installs from a --find-links wheelhouse: verified and imported', async (t) => {
  const src = await upstream('markupsafe');
  const house = tmpdir();
  const made = await execa('python3', [path.resolve('lib/build/build-wheel.py'), house, path.resolve('test/fixtures/py/intree-backend')], { reject: false, all: true });
  t.is(made.exitCode, 0, made.all);
  const out = tmpdir();
  const r = await imgbuild([bullseye, '--target', `local:${src.tarball}`, '--target', `local:${path.resolve('test/fixtures/py/needs-intree')}`, '--offline', '--find-links', house, '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Wheel[] };
  const [ms, needs] = m.wheels;
  t.is(ms?.file, `MarkupSafe-${src.version}-cp39-cp39-linux_armv7l.whl`);
  t.regex(r.stderr, /Debian GNU\/Linux 11 \(bullseye\) \(cp39-cp39-linux_armv7l\)/);
  t.true(readZip(path.join(out, ms!.file)).some((e) => /^markupsafe\/_speedups\.cpython-39-arm-linux-gnueabihf\.so$/.test(e.name)));
  t.like(needs?.buildRequirements?.find((b) => b.requirement === 'intree>=1.0'), { version: '1.0', from: 'workspace' });
  t.regex(logOf(out), /pip 20\.3|Successfully installed intree-1\.0/);
  t.regex(logOf(out), /imported markupsafe from/);
});

test('a C extension on a trixie aarch64 image (Python 3.13, gcc 14): verified and imported', async (t) => {
  const src = await upstream('markupsafe');
  const out = tmpdir();
  const r = await imgbuild([trixie, '--target', `local:${src.tarball}`, '--offline', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.regex(w.file, new RegExp(`^markupsafe-${src.version.replace(/\./g, "\\.")}-cp313-cp313-linux_aarch64\\.whl$`, "i"), "trixie's setuptools writes the normalized name");
  t.true(readZip(path.join(out, w.file)).some((e) => /^markupsafe\/_speedups\.cpython-313-aarch64-linux-gnu\.so$/.test(e.name)));
  t.regex(logOf(out), /imported markupsafe from/);
});

// onnxruntime's pipeline with a stand-in source that has the real entry point (build.sh) and puts
// its wheel where the real one does: the recipe's flags, the QNN SDK bound read-only from the
// host, the provider library required in the wheel, verification and the manifest, for real.
test('onnxruntime@1.23.0,ep=qnn on a trixie aarch64 image, a stand-in build.sh: its flags, qnn_home bound read-only from the host, build-arg passed on; the wheel has the QNN provider and is verified', async (t) => {
  const sdk = tmpdir();
  fs.writeFileSync(path.join(sdk, 'sdk.yaml'), 'version: 2.31.0 (stand-in)\n');
  const out = tmpdir();
  const r = await imgbuild([trixie, '--target', `onnxruntime@1.23.0,ep=qnn,qnn_home=${sdk},build-arg=--use_dnnl`, '--source', `onnxruntime=${path.resolve('test/fixtures/standin/onnxruntime')}`, '--offline', '--jobs', '2', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  const w = wheelOf(out);
  t.is(w.file, 'onnxruntime_qnn-1.23.0-cp313-cp313-linux_aarch64.whl');
  const members = readZip(path.join(out, w.file));
  t.true(members.some((e) => e.name === 'onnxruntime/capi/libonnxruntime_providers_qnn.so'));
  const zipText = (name: string) => {
    const e = members.find((m) => m.name === name)!;
    return readEntryText(path.join(out, w.file), e);
  };
  t.is(zipText('onnxruntime/capi/qnn-sdk.txt'), 'version: 2.31.0 (stand-in)\n', 'the SDK was read from the host directory');
  const args = JSON.parse(zipText('onnxruntime/capi/build-args.json')) as { argv: string[]; env: Record<string, string> };
  t.deepEqual(args.argv.slice(0, 8), ['--config', 'Release', '--build_shared_lib', '--build_wheel', '--parallel', '2', '--skip_tests', '--allow_running_as_root']);
  for (const a of ['--compile_no_warning_as_error', '--use_qnn', '--use_dnnl', 'onnxruntime_BUILD_UNIT_TESTS=OFF', 'QNN_ARCH_ABI=aarch64-oe-linux-gcc11.2']) t.true(args.argv.includes(a), a);
  t.is(args.argv[args.argv.indexOf('--qnn_home') + 1], '/workspace/.imgbuild/qnn-sdk');
  t.is(args.env.MAX_JOBS, '2');
  t.deepEqual(fs.readdirSync(sdk), ['sdk.yaml'], 'nothing was written into the SDK');

  const missing = await imgbuild([trixie, '--target', 'onnxruntime@1.23.0,ep=qnn,qnn_home=/nonexistent/qairt', '--source', `onnxruntime=${path.resolve('test/fixtures/standin/onnxruntime')}`, '--offline', '--out', tmpdir()]);
  t.is(missing.exitCode, 3, missing.all);
  t.regex(missing.stderr, /onnxruntime@1\.23\.0: the QNN SDK \(qnn_home=\) \/nonexistent\/qairt is not a directory on this host/);
});

// PyTorch's pipeline with a stand-in setup.py (the real entry point): the recipe's apt list and
// environment, and offline its pins from the image's apt, the numpy<1.24 pin waived with a warning
// (bookworm has 1.24.2, which torch's build does not mind). Then torchvision's stand-in, whose
// setup.py imports torch as the real one does: torch's wheel is installed in the build layer
// before torchvision builds, and it is that torch (not the image's or Debian's) that it finds.
test('torch@1.13.1 then torchvision@0.14.1 with stand-in setup.py files on a bookworm aarch64 image, offline: the recipes\' environment reaches each build, numpy<1.24 is waived naming both versions, torchvision builds on the torch wheel built first', async (t) => {
  const out = tmpdir();
  const r = await imgbuild([bookworm, '--target', 'torch@1.13.1', '--source', `torch=${path.resolve('test/fixtures/standin/torch')}`, '--target', 'torchvision@0.14.1,smoke=off', '--source', `torchvision=${path.resolve('test/fixtures/standin/torchvision')}`, '--offline', '--out', out]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.stderr, /warning: torch@1\.13\.1: the recipe pins numpy<1\.24, the image has 1\.24\.2; --offline, so the build goes on with 1\.24\.2/);
  t.regex(r.stderr, /offline: [^\n]*pyyaml[^\n]*installing [^\n]*python3-yaml/i);
  t.regex(r.stderr, /torchvision@0\.14\.1: smoke=off: the recipe's smoke test \(ops\.nms on three boxes and io\.decode_png of a 2x1 PNG\) is not run/);
  t.notRegex(r.stderr, /pair/i, 'torchvision 0.14.1 pairs with torch 1.13.1: no warning');
  const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Wheel[] };
  t.deepEqual(m.wheels.map((w) => w.file), ['torch-1.13.1-cp311-cp311-linux_aarch64.whl', 'torchvision-0.14.1-cp311-cp311-linux_aarch64.whl']);
  const [torch, vision] = m.wheels as [Wheel, Wheel];
  for (const pkg of ['libopencv-dev', 'libopenmpi-dev', 'libprotobuf-dev', 'protobuf-compiler']) t.truthy(torch.aptPackages?.[pkg], pkg);
  const env = recorded(path.join(out, torch.file), 'torch/build_env.json');
  t.like(env, { USE_CUDA: 'OFF', USE_MKLDNN: 'OFF', USE_NNPACK: 'OFF', USE_QNNPACK: 'OFF', USE_PYTORCH_QNNPACK: 'OFF', BUILD_TEST: '0', BUILD_CUSTOM_PROTOBUF: 'OFF', PYTORCH_BUILD_VERSION: '1.13.1', PYTORCH_BUILD_NUMBER: '1' });
  t.is(env.USE_PYTHON_QNNPACK, undefined, 'the guide\'s flag that no PyTorch reads is not set');
  const venv = recorded(path.join(out, vision.file), 'torchvision/build_env.json');
  t.like(venv, { BUILD_VERSION: '0.14.1', FORCE_CUDA: '0', TORCHVISION_USE_FFMPEG: '0', 'torch.__version__': 'stand-in' });
  t.regex(venv['torch.__file__']!, /^\/usr\/local\/lib\/python3\.11\/dist-packages\/torch\/__init__\.py$/, 'the torch wheel pip installed first');
  const log = logOf(out);
  t.regex(log, /imported torch from \/tmp\/imgbuild-verify-/);
  t.regex(log, /Successfully installed torch-1\.13\.1/);
});

function recorded(wheel: string, member: string): Record<string, string> {
  const e = readZip(wheel).find((m) => m.name === member)!;
  return JSON.parse(readEntryText(wheel, e)) as Record<string, string>;
}
