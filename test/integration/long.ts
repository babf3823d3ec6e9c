// The long tier: real builds too slow for CI's 90 minutes, run on demand with
//
//   sudo IMGBUILD_LONG=1 npx ava --serial --timeout=90m test/integration/long.ts
//
// (scripts/long-tier.sh does that). Without IMGBUILD_LONG each test is declared skipped, with why.
// onnx 1.17.0 (trixie's orig tarball) for a trixie aarch64 image: Python 3.13 and gcc 14, a gcc no
// cross compiler on this host matches: compiled by a toolchain tree of trixie (emulated before
// trees: 1848 s). And toolchain trees for the other arch of each release CI tests (bullseye
// aarch64, trixie armhf), whose sample images CI does not build.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { readZip } from '../../lib/parse/zip.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { treeBuildMatchesEmulated } from '../helpers/toolchain.js';
import { upstream } from '../helpers/upstream.js';

const test = anyTest as TestFn<HostContext>;
const long = process.env.IMGBUILD_LONG === '1';

const title = 'onnx 1.17.0 for a trixie aarch64 image (Python 3.13, gcc 14), offline: built, verified, smoke-tested';
if (long) {
  process.env.IMGBUILD_WHEEL_CACHE = '0';
  hostUnchanged(test);
  const trixie = sampleSync('aarch64', 'mbr', 'trixie');
  test(title, async (t) => {
    const src = await upstream('onnx/trixie');
    const out = tmpdir();
    const r = await imgbuild([trixie, '--target', 'onnx@1.17.0', '--source', `onnx=${src.tarball}`, '--offline', '--runtime-apt', 'libprotobuf32t64', '--out', out], { timeoutMs: 85 * 60_000 });
    t.is(r.exitCode, 0, r.all);
    const m = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: { file: string; seconds: number }[] };
    const w = m.wheels[0]!;
    t.is(w.file, 'onnx-1.17.0-cp313-cp313-linux_aarch64.whl');
    t.log(`built in ${Math.round(w.seconds)} s`);
    t.true(readZip(path.join(out, w.file)).some((e) => /^onnx\/onnx_cpp2py_export\.cpython-313-aarch64-linux-gnu\.so$/.test(e.name)));
    const logs = path.join(out, 'logs');
    const log = fs.readdirSync(logs).map((f) => fs.readFileSync(path.join(logs, f), 'utf8')).join('\n');
    t.regex(log, /onnx smoke test: check_model accepted a MatMul\+Relu model, infer_shapes gave Y \[2, 4\], a malformed model was rejected/);
  });
}

const trees = [
  { arch: 'aarch64', suite: 'bullseye', name: 'bullseye aarch64', major: '10', tree: 'bullseye-aarch64-gcc10', machine: 183, tag: 'cp39-cp39-linux_aarch64' },
  { arch: 'armhf', suite: 'trixie', name: 'trixie armhf', major: '14', tree: 'trixie-armhf-gcc14', machine: 40, tag: 'cp313-cp313-linux_armv7l' },
] as const;
for (const r of trees) {
  const treeTitle = `${r.name}: a C++ extension compiled by the gcc ${r.major} of a toolchain tree of ${r.suite}; the same wheel as emulated gcc makes`;
  if (long) {
    const image = sampleSync(r.arch, 'mbr', r.suite);
    test(treeTitle, (t) => treeBuildMatchesEmulated(t, { ...r, image }));
  } else {
    const why = 'the long tier (builds the bullseye aarch64 and trixie armhf sample images): run scripts/long-tier.sh';
    test.skip(`${treeTitle} [skipped: ${why}]`, () => {});
    console.log(`skipped: ${treeTitle}: ${why}`);
  }
}

if (!long) {
  const why = 'the long tier (onnx for trixie: a long compile): run scripts/long-tier.sh';
  test.skip(`${title} [skipped: ${why}]`, () => {});
  console.log(`skipped: ${title}: ${why}`);
}
