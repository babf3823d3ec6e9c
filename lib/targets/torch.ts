// PyTorch from source, the way the PYNQ chroot guide builds it: CUDA, MKLDNN, NNPACK and QNNPACK
// off, OpenCV on, the image's own protobuf, and torch.distributed kept (libopenmpi-dev).
import { GiB } from '../core/units.js';
import { startPlan } from './recipe.js';
import { type PlanOptions, type Recipe, type TargetPlan, type VersionRule, jobsEnv } from './types.js';

// Pins: PyYAML 6 made yaml.load's Loader mandatory; setuptools 60 replaced the stdlib distutils the
// 1.x setup.py drives; numpy 1.24 removed the np.bool/np.object aliases; numpy 2 changed the C ABI.
const old = ['setuptools<60', 'wheel', 'pyyaml<6', 'numpy<1.20', 'future', 'six'];
const v2 = ['setuptools', 'wheel', 'pyyaml', 'numpy<2', 'typing_extensions', 'filelock', 'sympy', 'networkx', 'jinja2', 'fsspec'];

const qnnpackBug = 'PyTorch 1.5 fails while building QNNPACK (pytorch/pytorch#33124): USE_QNNPACK=OFF and USE_PYTORCH_QNNPACK=OFF keep it out of the build';

export const torchVersions: VersionRule[] = [
  { versions: ['1.1.0'], python: ['3.5', '3.7'], pip: old, cmake: '3.5', notes: ['the version the PYNQ chroot guide builds'] },
  { versions: ['1.2.0'], python: ['3.5', '3.7'], pip: old, cmake: '3.5' },
  { versions: ['1.3.0', '1.3.1'], python: ['3.5', '3.7'], pip: old, cmake: '3.5' },
  { versions: ['1.4.0'], python: ['3.5', '3.8'], pip: old, cmake: '3.5' },
  { versions: ['1.5.0', '1.5.1'], python: ['3.5', '3.8'], pip: old, cmake: '3.5', env: { USE_QNNPACK: 'OFF', USE_PYTORCH_QNNPACK: 'OFF' }, notes: [qnnpackBug] },
  { versions: ['1.6.0'], python: ['3.6', '3.8'], pip: ['setuptools<60', 'wheel', 'pyyaml', 'numpy<1.20', 'future'], cmake: '3.5' },
  { versions: ['1.7.0', '1.7.1'], python: ['3.6', '3.8'], pip: ['setuptools<60', 'wheel', 'pyyaml', 'numpy<1.24', 'typing_extensions', 'dataclasses; python_version < "3.7"'], cmake: '3.5' },
  { versions: ['1.8.0', '1.8.1', '1.9.0', '1.9.1', '1.10.0', '1.10.1', '1.10.2'], python: ['3.6', '3.9'], pip: ['setuptools<60', 'wheel', 'pyyaml', 'numpy<1.24', 'typing_extensions', 'dataclasses; python_version < "3.7"'], cmake: '3.10' },
  { versions: ['1.11.0', '1.12.0', '1.12.1', '1.13.0', '1.13.1'], python: ['3.7', '3.10'], pip: ['setuptools', 'wheel', 'pyyaml', 'numpy<1.24', 'typing_extensions'], cmake: '3.13' },
  { versions: ['2.0.0', '2.0.1', '2.1.0', '2.1.1', '2.1.2'], python: ['3.8', '3.11'], pip: v2, cmake: '3.18' },
  { versions: ['2.2.0', '2.2.1', '2.2.2'], python: ['3.8', '3.12'], pip: v2, cmake: '3.18' },
];

/**
 * The PYNQ guide's environment, with PyTorch's own QNNPACK flag: the guide sets USE_PYTHON_QNNPACK,
 * which no PyTorch version reads (so its QNNPACK stayed on); USE_PYTORCH_QNNPACK turns it off.
 */
export const torchEnv: Record<string, string> = {
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
};

export const torchApt = ['protobuf-compiler', 'libprotobuf-dev', 'libopencv-dev', 'libopenmpi-dev', 'cmake'];

export const torch: Recipe = {
  name: 'torch',
  describe: 'PyTorch from github.com/pytorch/pytorch (CPU only, OpenCV, torch.distributed with MPI)',
  defaultVersion: '2.1.2',
  versions: torchVersions,
  plan(version: string, o: PlanOptions): TargetPlan {
    const { rule, jobs, cmake, warnings } = startPlan(torch, version, o);
    const notes = [...(rule.notes ?? []), ...cmake.notes, 'torch.distributed stays enabled (MPI from libopenmpi-dev); the wheel links the image\'s libprotobuf, libopencv and libmpi, so the board needs those runtime packages'];
    if (o.arch === 'armhf' || o.arch === 'armel') notes.push('PyTorch has no official 32-bit ARM support: expect build fixes to be needed');
    return {
      id: `torch@${version}`,
      name: 'torch',
      version,
      source: { kind: 'git', url: 'https://github.com/pytorch/pytorch.git', ref: `v${version}`, submodules: true },
      apt: [...torchApt],
      pip: [...rule.pip, ...cmake.pip],
      env: {
        ...torchEnv,
        ...rule.env,
        ...jobsEnv(jobs),
        // Without these the wheel is called 1.1.0a0+<sha>, which pairs badly with torchvision pins.
        PYTORCH_BUILD_VERSION: version,
        PYTORCH_BUILD_NUMBER: '1',
      },
      commands: [['python3', 'setup.py', 'bdist_wheel']],
      wheelDir: 'dist',
      importName: 'torch',
      needs: [],
      pairsWith: {},
      diskBytes: 14 * GiB,
      memoryPerJobBytes: 2 * GiB,
      notes,
      warnings,
    };
  },
};
