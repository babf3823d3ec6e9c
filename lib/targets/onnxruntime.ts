// ONNX Runtime from source with its own build.sh, as the Graviton guide does it, plus the vendor
// variant with the QNN execution provider (ep=qnn) that board vendors ship as onnxruntime_qnn.
import { UsageError } from '../core/errors.js';
import { GiB, MiB } from '../core/units.js';
import { startPlan } from './recipe.js';
import { type PlanOptions, type Recipe, type TargetPlan, type VersionRule, compareVersions, jobsEnv } from './types.js';

interface OrtRule extends VersionRule {
  /** build.py refuses to run as root unless told --allow_running_as_root (1.15 and later: microsoft/onnxruntime#15164; earlier build.py rejects the flag). */
  rootFlag: boolean;
  /** --compile_no_warning_as_error exists (1.14 and later); before it, DEV_MODE=OFF turns -Werror off. */
  noWerrorFlag: boolean;
  /** --use_qnn builds for Linux aarch64 are accepted. */
  qnn: boolean;
}

// cmake minimums: 3.18 for 1.11-1.13; 3.24 once dependencies moved to FetchContent (1.14, #13569);
// 3.26 from 1.15 (#16012); 3.27 per the Graviton guide; 3.28 in 2025 (#23888).
export const onnxruntimeVersions: OrtRule[] = [
  { versions: ['1.11.0', '1.11.1'], python: ['3.7', '3.9'], cmake: '3.18', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers'], rootFlag: false, noWerrorFlag: false, qnn: false, notes: ['the version of the onnx-wheels buildx guide (onnxruntime-1.11.0-cp37-cp37m-linux_armv7l.whl, Python 3.7 to 3.9)'] },
  { versions: ['1.12.0', '1.12.1'], python: ['3.7', '3.10'], cmake: '3.18', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers'], rootFlag: false, noWerrorFlag: false, qnn: false },
  { versions: ['1.13.1'], python: ['3.7', '3.10'], cmake: '3.18', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers'], rootFlag: false, noWerrorFlag: false, qnn: false },
  { versions: ['1.14.0', '1.14.1'], python: ['3.7', '3.10'], cmake: '3.24', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: false, noWerrorFlag: true, qnn: false },
  { versions: ['1.15.0', '1.15.1'], python: ['3.8', '3.11'], cmake: '3.26', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: false },
  { versions: ['1.16.0', '1.16.1', '1.16.2', '1.16.3', '1.17.0', '1.17.1', '1.17.3'], python: ['3.8', '3.11'], cmake: '3.26', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: false },
  { versions: ['1.18.0', '1.18.1'], python: ['3.8', '3.12'], cmake: '3.26', pip: ['numpy<2', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: true },
  { versions: ['1.19.0', '1.19.2'], python: ['3.9', '3.12'], cmake: '3.27', pip: ['numpy', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: true },
  { versions: ['1.20.0', '1.20.1'], python: ['3.10', '3.12'], cmake: '3.27', pip: ['numpy', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: true, notes: ['onnxruntime 1.20 dropped Python 3.8 and 3.9'] },
  { versions: ['1.21.0', '1.22.0', '1.23.0'], python: ['3.10', '3.13'], cmake: '3.28', pip: ['numpy', 'packaging', 'wheel', 'setuptools', 'flatbuffers', 'sympy'], rootFlag: true, noWerrorFlag: true, qnn: true },
];

const options = {
  ep: 'execution provider: cpu (default) or qnn (Qualcomm AI Engine Direct; aarch64 only)',
  qnn_home: 'the QNN SDK (QAIRT) directory on the host, bound read-only into the chroot for the build; required with ep=qnn',
  'build-arg': 'a flag passed on to build.sh, e.g. build-arg=--use_dnnl (repeat it for more; a flag with a value as --flag=value)',
  qnn_abi: 'the QNN SDK lib/ directory for the board with ep=qnn (default aarch64-oe-linux-gcc11.2; aarch64-ubuntu-gcc9.4 for Ubuntu boards)',
};

// Where the chroot sees qnn_home (bound read-only there for the build).
const qnnInner = '/workspace/.imgbuild/qnn-sdk';

// build-arg=FLAG, repeated (joined by commas): each one flag for build.sh.
function buildArgs(value: string | undefined): string[] {
  const args = value === undefined ? [] : value.split(',');
  for (const a of args) {
    if (!/^--?[A-Za-z0-9][A-Za-z0-9_-]*(=\S*)?$/.test(a)) throw new UsageError(`build-arg=${a} is not a build.sh flag`, 'give one flag per build-arg, e.g. build-arg=--use_dnnl or build-arg=--cmake_extra_defines=onnxruntime_USE_X=ON');
  }
  return args;
}

export const onnxruntime: Recipe<OrtRule> = {
  name: 'onnxruntime',
  describe: 'ONNX Runtime from github.com/microsoft/onnxruntime via build.sh (CPU, or ep=qnn for onnxruntime_qnn)',
  defaultVersion: '1.16.3',
  versions: onnxruntimeVersions,
  options,
  plan(version: string, o: PlanOptions): TargetPlan {
    const { opts, rule, jobs, cmake, warnings } = startPlan(onnxruntime, version, o);
    const ep = opts.ep ?? 'cpu';
    if (ep !== 'cpu' && ep !== 'qnn') throw new UsageError(`unknown onnxruntime execution provider ep=${ep}`, 'use ep=cpu (the default) or ep=qnn');
    if (ep === 'cpu' && opts.qnn_home) throw new UsageError('qnn_home is only used with ep=qnn', 'add ep=qnn, or drop qnn_home');

    const notes = [...(rule.notes ?? []), ...cmake.notes];
    const defines = ['onnxruntime_BUILD_UNIT_TESTS=OFF'];
    const flags: string[] = [];
    if (rule.rootFlag) flags.push('--allow_running_as_root');
    if (rule.noWerrorFlag) flags.push('--compile_no_warning_as_error');
    // build.py turns DEV_MODE (-Werror) on; a later -D wins, so newer compilers' warnings stay warnings.
    else defines.push('onnxruntime_DEV_MODE=OFF');

    const binds: { source: string; inner: string; what: string }[] = [];
    const members: { pattern: string; why: string }[] = [];
    const extra = buildArgs(opts['build-arg']);
    let name = 'onnxruntime';
    if (ep === 'qnn') {
      if (o.arch !== 'aarch64') throw new UsageError(`onnxruntime ep=qnn builds for aarch64 only, this image is ${o.arch}`, 'use an aarch64 image, or build without ep=qnn');
      if (!rule.qnn) throw new UsageError(`onnxruntime ${version} is not known to build the QNN execution provider on Linux`, `use one of ${onnxruntimeVersions.filter((r) => r.qnn).flatMap((r) => r.versions).join(', ')}`);
      if (!opts.qnn_home) throw new UsageError('onnxruntime ep=qnn needs qnn_home=PATH', 'the QNN SDK (QAIRT) directory as seen inside the chroot, e.g. under /workspace');
      if (!opts.qnn_home.startsWith('/')) throw new UsageError(`qnn_home=${opts.qnn_home} is not an absolute path`, 'give the QNN SDK directory on the host, e.g. qnn_home=/opt/qcom/aistack/qairt/2.31.0');
      binds.push({ source: opts.qnn_home, inner: qnnInner, what: 'the QNN SDK (qnn_home=)' });
      members.push({ pattern: '^onnxruntime/capi/libonnxruntime_providers_qnn\\.so$|^onnxruntime/capi/libQnn\\w+\\.so$', why: 'ep=qnn: the QNN execution provider' });
      flags.push('--use_qnn', '--qnn_home', qnnInner);
      // Without QNN_ARCH_ABI, ORT's cmake takes any non-x86_64 Linux for aarch64-android (#24102).
      defines.push(`QNN_ARCH_ABI=${opts.qnn_abi ?? 'aarch64-oe-linux-gcc11.2'}`);
      name = 'onnxruntime_qnn';
      notes.push(
        'ep=qnn: the wheel is onnxruntime_qnn (import name onnxruntime); the vendor\'s published wheel is onnxruntime_qnn-1.23.0-cp312-cp312-linux_aarch64.whl, i.e. aarch64 and Python 3.12 only',
        'the QNN backend libraries (libQnnHtp.so, ...) must be present on the board at run time',
      );
      if (o.python !== '3.12') notes.push(`the vendor builds onnxruntime_qnn for Python 3.12; this image has ${o.python}, which is untested`);
      if (compareVersions(version, '1.23.0') < 0) notes.push('the QNN build is confirmed for 1.23.0 by the vendor guide; earlier versions are untested');
    }
    if (o.arch === 'armhf' || o.arch === 'armel') notes.push('32-bit ARM: keep --jobs low, single compile units of onnxruntime need well over 1 GiB');

    return {
      id: `onnxruntime@${version}`,
      name,
      version,
      source: { kind: 'git', url: 'https://github.com/microsoft/onnxruntime.git', ref: `v${version}`, submodules: true },
      // ONNX Runtime builds its own protobuf, so only cmake comes from apt.
      apt: ['cmake'],
      pip: [...rule.pip, ...cmake.pip],
      env: jobsEnv(jobs),
      commands: [['./build.sh', '--config', 'Release', '--build_shared_lib', '--build_wheel', '--parallel', jobs, '--skip_tests', ...flags, ...extra, '--cmake_extra_defines', ...defines]],
      wheelDir: 'build/Linux/Release/dist',
      importName: 'onnxruntime',
      ...(binds.length ? { binds } : {}),
      ...(members.length ? { wheelMembers: members } : {}),
      needs: [],
      pairsWith: {},
      diskBytes: 10 * GiB,
      memoryPerJobBytes: 1536 * MiB,
      notes,
      warnings,
    };
  },
};
