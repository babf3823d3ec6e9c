// torchvision from source. It builds against the torch installed in the chroot, so torch comes
// first (a --target or a --with-wheel), and each torchvision release pairs with one torch release.
import { UsageError } from '../core/errors.js';
import { torchVersions } from './torch.js';
import { GiB } from '../core/units.js';
import { startPlan } from './recipe.js';
import { type PlanOptions, type Recipe, type TargetPlan, type VersionRule, compareVersions, findRule, jobsEnv } from './types.js';

// Pillow 7 dropped PILLOW_VERSION, which torchvision < 0.5 imports; six went with Python 2 in 0.6.
const pil6 = ['Pillow<7', 'six'];
const pil = ['Pillow', 'six'];
const modern = ['Pillow'];
// 0.12-0.16 import requests at import time; 0.12-0.14 typing_extensions too (spack's records).
const withRequests = ['Pillow', 'requests', 'typing_extensions'];
const withRequestsOnly = ['Pillow', 'requests'];

interface VisionRow {
  vision: string;
  /** The official pairing (pytorch/vision README). */
  torch: string;
  pip: string[];
  /** Other torch versions a reference document builds it against. */
  alsoBuiltWith?: string[];
  note?: string;
}

// One row per release: torchvision version, the torch it was released with, pip prerequisites.
const pairing: VisionRow[] = [
  { vision: '0.3.0', torch: '1.1.0', pip: pil6 },
  { vision: '0.4.0', torch: '1.2.0', pip: pil6, alsoBuiltWith: ['1.1.0'], note: 'the PYNQ chroot guide builds torchvision 0.4.0 against torch 1.1.0 (and clones -b 0.4.0); the official pairing is torch 1.2.0' },
  { vision: '0.4.1', torch: '1.3.0', pip: pil6 },
  { vision: '0.4.2', torch: '1.3.1', pip: pil6 },
  { vision: '0.5.0', torch: '1.4.0', pip: pil },
  { vision: '0.6.0', torch: '1.5.0', pip: modern },
  { vision: '0.6.1', torch: '1.5.1', pip: modern },
  { vision: '0.7.0', torch: '1.6.0', pip: modern },
  { vision: '0.8.0', torch: '1.7.0', pip: modern },
  { vision: '0.8.1', torch: '1.7.0', pip: modern },
  { vision: '0.8.2', torch: '1.7.1', pip: modern },
  { vision: '0.9.0', torch: '1.8.0', pip: modern },
  { vision: '0.9.1', torch: '1.8.1', pip: modern },
  { vision: '0.10.0', torch: '1.9.0', pip: modern },
  { vision: '0.10.1', torch: '1.9.1', pip: modern },
  { vision: '0.11.0', torch: '1.10.0', pip: modern },
  { vision: '0.11.1', torch: '1.10.0', pip: modern },
  { vision: '0.11.2', torch: '1.10.1', pip: modern },
  { vision: '0.11.3', torch: '1.10.2', pip: modern },
  { vision: '0.12.0', torch: '1.11.0', pip: withRequests },
  { vision: '0.13.0', torch: '1.12.0', pip: withRequests },
  { vision: '0.13.1', torch: '1.12.1', pip: withRequests },
  { vision: '0.14.0', torch: '1.13.0', pip: withRequests },
  { vision: '0.14.1', torch: '1.13.1', pip: withRequests },
  { vision: '0.15.1', torch: '2.0.0', pip: withRequestsOnly },
  { vision: '0.15.2', torch: '2.0.1', pip: withRequestsOnly },
  { vision: '0.16.0', torch: '2.1.0', pip: withRequestsOnly },
  { vision: '0.16.1', torch: '2.1.1', pip: withRequestsOnly },
  { vision: '0.16.2', torch: '2.1.2', pip: withRequestsOnly },
  { vision: '0.17.0', torch: '2.2.0', pip: modern },
  { vision: '0.17.1', torch: '2.2.1', pip: modern },
  { vision: '0.17.2', torch: '2.2.2', pip: modern },
];

function pythonOf(torchVersion: string): readonly [string, string] {
  return findRule('torch', torchVersions, torchVersion).python;
}

/** The version table: Python support follows the paired torch. */
export const torchvisionVersions: VersionRule[] = pairing.map((row) => ({
  versions: [row.vision],
  python: pythonOf(row.torch),
  pip: row.pip,
  pairs: { torch: [row.torch, ...(row.alsoBuiltWith ?? [])] },
  notes: row.note ? [row.note] : [],
}));

/** The torch release a torchvision release was made for (undefined for an unknown version). */
export function pairedTorch(visionVersion: string): string | undefined {
  return pairing.find((r) => r.vision === visionVersion)?.torch;
}

/** The torchvision releases made for a torch release. */
export function pairedVision(torchVersion: string): string[] {
  return pairing.filter((r) => r.torch === torchVersion).map((r) => r.vision);
}

// nms keeps the first and third of three boxes (the second overlaps the first by IoU 0.68);
// decode_png (0.8 and later) reads a 2x1 PNG made here byte by byte.
const nmsTest = [
  'import torch, torchvision',
  'from torchvision.ops import nms',
  'boxes = torch.tensor([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30]], dtype=torch.float)',
  'keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), 0.5)',
  'assert keep.tolist() == [0, 2], keep',
];
const pngTest = [
  'import struct, zlib',
  'from torchvision.io import decode_png',
  "chunk = lambda kind, data: struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data) & 0xffffffff)",
  "png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 2, 1, 8, 2, 0, 0, 0)) + chunk(b'IDAT', zlib.compress(bytes([0, 255, 0, 0, 0, 0, 255]))) + chunk(b'IEND', b'')",
  'img = decode_png(torch.tensor(list(png), dtype=torch.uint8))',
  'assert tuple(img.shape) == (3, 1, 2) and img[:, 0, 0].tolist() == [255, 0, 0] and img[:, 0, 1].tolist() == [0, 0, 255], img',
];

function smokeTest(version: string): { what: string; python: string } {
  const png = compareVersions(version, '0.8.0') >= 0;
  const lines = [...nmsTest, ...(png ? pngTest : []), `print('torchvision smoke test: nms kept boxes 0 and 2${png ? ', decode_png read a 2x1 PNG' : ''}')`];
  return { what: png ? 'ops.nms on three boxes and io.decode_png of a 2x1 PNG' : 'ops.nms on three boxes', python: lines.join('\n') };
}

export const torchvision: Recipe = {
  name: 'torchvision',
  describe: 'torchvision from github.com/pytorch/vision, built against the torch installed first',
  defaultVersion: '0.16.2',
  versions: torchvisionVersions,
  plan(version: string, o: PlanOptions): TargetPlan {
    const { rule, jobs, warnings } = startPlan(torchvision, version, o);
    const torchVersion = pairedTorch(version);
    if (!torchVersion) throw new UsageError(`no torch pairing recorded for torchvision ${version}`);
    return {
      id: `torchvision@${version}`,
      name: 'torchvision',
      version,
      source: { kind: 'git', url: 'https://github.com/pytorch/vision.git', ref: `v${version}`, submodules: false },
      // Pillow < 7 has no wheels for these Pythons on ARM, so pip compiles it; torchvision's image
      // decoders (0.8 and later) want libpng and libjpeg too; ninja lets torch's BuildExtension
      // compile MAX_JOBS files at once instead of one at a time.
      apt: ['libjpeg-dev', 'zlib1g-dev', 'libpng-dev', 'ninja-build'],
      pip: [...rule.pip],
      env: {
        ...jobsEnv(jobs),
        FORCE_CUDA: '0',
        // Otherwise the wheel is called <version>a0+<sha> (version.txt says 0.14.1a0).
        BUILD_VERSION: version,
        // An image with ffmpeg but without its headers would otherwise fail the video reader.
        TORCHVISION_USE_FFMPEG: '0',
        TORCHVISION_USE_VIDEO_CODEC: '0',
      },
      commands: [['python3', 'setup.py', 'bdist_wheel']],
      wheelDir: 'dist',
      importName: 'torchvision',
      smokeTest: smokeTest(version),
      needs: ['torch'],
      // torch/include of Debian's python3-torch links to /usr/include, which libtorch-dev fills.
      withDebianNeed: { torch: ['libtorch-dev'] },
      pairsWith: { torch: [...(rule.pairs?.torch ?? [])] },
      diskBytes: 2 * GiB,
      memoryPerJobBytes: 1536 * 1024 * 1024,
      notes: [`torchvision ${version} pairs with torch ${torchVersion}: build it first (--target torch@${torchVersion}), give it (--with-wheel), or have it in the build environment (the image's, or Debian's python3-torch with libtorch-dev)`, ...(rule.notes ?? [])],
      warnings,
    };
  },
};
