// A build compiled by a toolchain tree of the image's release, compared with the same build
// emulated (test/integration/toolchain.ts for CI's images, long.ts for the other arch of each release).
import fs from 'node:fs';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import { readElfHeader } from '../../lib/parse/elf.js';
import { readEntryHead, readZip } from '../../lib/parse/zip.js';
import { imgbuild, tmpdir } from './cli.js';

export interface TreeRelease {
  name: string;
  image: string;
  major: string;
  tree: string;
  machine: number;
  tag: string;
}

interface Wheel {
  file: string;
  accel: string;
  compiler: string;
}
const manifestOf = (out: string) => JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8')) as { wheels: Wheel[] };

/** What must not differ between a wheel compiled natively and one compiled under emulation. */
function shape(file: string): { names: string[]; machines: (number | undefined)[] } {
  const entries = readZip(file).filter((e) => !e.name.endsWith('/RECORD'));
  const machines = entries.filter((e) => e.name.endsWith('.so')).map((e) => readElfHeader(readEntryHead(file, e, 64))?.machine);
  return { names: entries.map((e) => e.name).sort(), machines };
}

/** test/fixtures/py/cxx-hello built with --toolchain tree (gcc_major() checked in the chroot), then emulated: the same wheel. */
export async function treeBuildMatchesEmulated(t: ExecutionContext, r: TreeRelease): Promise<void> {
  const check = `python3 -c "import imgbuild_cxx_hello as m; assert m.gcc_major() == ${r.major}, m.gcc_major(); assert m.joined('a', 'b') == 'a+b'"`;
  const out = tmpdir();
  const args = [r.image, '--target', `local:${path.resolve('test/fixtures/py/cxx-hello')}`, '--no-wheel-cache', '--test-command', check];
  const native = await imgbuild([...args, '--accel', 'cross', '--toolchain', 'tree', '--out', out]);
  t.is(native.exitCode, 0, native.all);
  t.regex(native.all, new RegExp(`accel: native \\(toolchain tree ${r.tree}\\) \\S+-gcc-${r.major} for the image's gcc ${r.major}`));
  const w = manifestOf(out).wheels[0]!;
  t.is(w.file, `imgbuild_cxx_hello-1.0.0-${r.tag}.whl`);
  t.regex(w.accel, new RegExp(`toolchain tree ${r.tree}`));
  t.regex(w.compiler, new RegExp(`gcc-${r.major} .*${r.major}\\.\\d`));
  const emulatedOut = tmpdir();
  const emulated = await imgbuild([...args, '--accel', 'none', '--out', emulatedOut]);
  t.is(emulated.exitCode, 0, emulated.all);
  const a = shape(path.join(out, w.file));
  t.deepEqual(a, shape(path.join(emulatedOut, w.file)), 'same members, tags and ELF machines as the emulated build');
  t.deepEqual(a.machines, [r.machine]);
}
