// ONNX from source against the image's own protobuf (shared), built by its setup.py's cmake step.
import { wheelCommand } from './local.js';
import { GiB, MiB } from '../core/units.js';
import { startPlan } from './recipe.js';
import { type PlanOptions, type Recipe, type TargetPlan, type VersionRule, jobsEnv } from './types.js';

// Checked against onnx's own files and PRs (the issue note of #15 lists them): onnx <= 1.12 uses
// np.object/np.bool at import (onnx/mapping.py), gone in numpy 1.24 (from 1.13 only its test cases
// do); protobuf 4 rejects _pb2 code from a protoc older than 3.19 (bullseye's 3.12), which 1.8-1.11
// generate; 1.12 caps protobuf<=3.20.1 itself (#4223), 1.13 >=3.20.2,<4; setup_requires lists
// pytest-runner up to 1.16, which setuptools would fetch; 1.8's requirements include six. Until
// 1.18 the build runs protoc-gen-mypy, which imports Python protobuf: it is needed to build.
export const onnxVersions: VersionRule[] = [
  { versions: ['1.8.0', '1.8.1'], python: ['3.5', '3.8'], pip: ['numpy<1.24', 'protobuf<4', 'six', 'typing_extensions', 'pytest-runner'], cmake: '3.1' },
  { versions: ['1.9.0', '1.10.0', '1.10.1', '1.10.2'], python: ['3.6', '3.9'], pip: ['numpy<1.24', 'protobuf<4', 'typing_extensions', 'pytest-runner'], cmake: '3.1' },
  { versions: ['1.11.0'], python: ['3.7', '3.10'], pip: ['numpy<1.24', 'protobuf<4', 'typing_extensions', 'pytest-runner'], cmake: '3.1', notes: ['the version of the onnx-wheels buildx guide (onnx-1.11.0-cp37-cp37m-linux_armv7l.whl)'] },
  { versions: ['1.12.0'], python: ['3.7', '3.10'], pip: ['numpy<1.24', 'protobuf<=3.20.1', 'typing_extensions', 'pytest-runner'], cmake: '3.1' },
  { versions: ['1.13.0', '1.13.1'], python: ['3.7', '3.11'], pip: ['numpy<2', 'protobuf>=3.20.2,<4', 'typing_extensions', 'pytest-runner'], cmake: '3.1' },
  { versions: ['1.14.0', '1.14.1'], python: ['3.7', '3.11'], pip: ['numpy<2', 'protobuf>=3.20.2', 'typing_extensions', 'pytest-runner'], cmake: '3.1' },
  { versions: ['1.15.0', '1.16.0', '1.16.1', '1.16.2'], python: ['3.8', '3.12'], pip: ['numpy<2', 'protobuf>=3.20.2', 'typing_extensions', 'pytest-runner'], cmake: '3.14' },
  { versions: ['1.17.0'], python: ['3.8', '3.12'], pip: ['numpy>=1.20', 'protobuf>=3.20.2'], cmake: '3.14', notes: ['build-system.requires setuptools>=64 (bullseye has 52: pip installs a newer one into the workspace, or offline the build stops naming it)'] },
];

// A model made with onnx.helper passes the checker and gets the right shapes; a malformed one is refused.
const smokeTest = [
  'from onnx import TensorProto, checker, helper, shape_inference',
  "X = helper.make_tensor_value_info('X', TensorProto.FLOAT, [2, 3])",
  "W = helper.make_tensor_value_info('W', TensorProto.FLOAT, [3, 4])",
  "Z = helper.make_tensor_value_info('Z', TensorProto.FLOAT, [2, 4])",
  "nodes = [helper.make_node('MatMul', ['X', 'W'], ['Y']), helper.make_node('Relu', ['Y'], ['Z'])]",
  "opset = [helper.make_opsetid('', 13)]",
  "model = helper.make_model(helper.make_graph(nodes, 'smoke', [X, W], [Z]), opset_imports=opset)",
  'checker.check_model(model)',
  "shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim] for v in shape_inference.infer_shapes(model).graph.value_info}",
  "assert shapes.get('Y') == [2, 4], shapes",
  "bad = helper.make_model(helper.make_graph([helper.make_node('MatMul', ['X'], ['Y', 'Q', 'R'])], 'bad', [X], [Z]), opset_imports=opset)",
  'try:',
  '    checker.check_model(bad)',
  "    raise SystemExit('onnx.checker accepted a malformed model')",
  'except checker.ValidationError:',
  '    pass',
  "print('onnx smoke test: check_model accepted a MatMul+Relu model, infer_shapes gave Y [2, 4], a malformed model was rejected')",
].join('\n');

export const onnx: Recipe = {
  name: 'onnx',
  describe: 'ONNX from github.com/onnx/onnx (ONNX_ML, linked to the image\'s shared libprotobuf)',
  defaultVersion: '1.16.2',
  versions: onnxVersions,
  plan(version: string, o: PlanOptions): TargetPlan {
    const { rule, jobs, cmake, warnings } = startPlan(onnx, version, o);
    return {
      id: `onnx@${version}`,
      name: 'onnx',
      version,
      source: { kind: 'git', url: 'https://github.com/onnx/onnx.git', ref: `v${version}`, submodules: true },
      // pybind11-dev: found by find_package(pybind11) before third_party/pybind11, which release
      // tarballs made from git tags (Debian's orig tarball) leave empty.
      apt: ['protobuf-compiler', 'libprotobuf-dev', 'cmake', 'pybind11-dev'],
      pip: [...rule.pip, ...cmake.pip],
      env: {
        ONNX_ML: '1',
        // Debian's static libprotobuf.a is not built for a shared object on every arch; link the .so.
        CMAKE_ARGS: '-DONNX_USE_PROTOBUF_SHARED_LIBS=ON',
        ...jobsEnv(jobs),
      },
      commands: [wheelCommand('.')],
      wheelDir: 'dist',
      importName: 'onnx',
      smokeTest: { what: 'check_model, infer_shapes and a malformed model on a MatMul+Relu graph', python: smokeTest },
      needs: [],
      pairsWith: {},
      diskBytes: 2 * GiB,
      memoryPerJobBytes: 1024 * MiB,
      notes: [
        ...(rule.notes ?? []),
        ...cmake.notes,
        'the wheel links the image\'s shared libprotobuf: the board needs Debian\'s libprotobufNN runtime package (the one libprotobuf-dev pulls in)',
        'python protobuf must accept the code generated by the image\'s protoc; with an old protoc and protobuf>=4 set PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION=python on the board',
      ],
      warnings,
    };
  },
};
