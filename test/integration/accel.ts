// Host-native cross compilers inside the emulated chroot, the wheel cache and the memory limit,
// on the real sample images (real loops, mounts, qemu, cgroups), host unchanged after each test.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { readElfHeader } from '../../lib/parse/elf.js';
import { readZip } from '../../lib/parse/zip.js';
import { ExitCode } from '../../lib/core/errors.js';
import { hostCrossVersions } from '../../lib/accel/index.js';
import { type HostContext, copySparse, hostUnchanged, imgbuild, sampleSync, sha256, tmpdir } from '../helpers/cli.js';
import { debianPackage } from '../helpers/debian.js';
import { onRoot } from '../helpers/hostile.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const hello = path.resolve('test/fixtures/py/cext-hello');
const eat = path.resolve('test/fixtures/py/eat-memory');
const reserve = path.resolve('test/fixtures/py/cxx-reserve');
const aarch64 = sampleSync('aarch64');
const armhf = sampleSync('armhf');

const cSource = '#include <stdio.h>\nint main(void) { puts("c ok"); return 0; }\n';
// std::string::reserve() without arguments is GLIBCXX_3.4.29: the image's own libstdc++ must have it.
const cxxSource = '#include <iostream>\n#include <string>\nint main() { std::string s(3, \'x\'); s.reserve(); std::cout << "c++ ok " << s << std::endl; }\n';

function workspace(): string {
  const ws = tmpdir();
  fs.writeFileSync(path.join(ws, 't.c'), cSource);
  fs.writeFileSync(path.join(ws, 't.cc'), cxxSource);
  return ws;
}

const machineOf = (file: string) => readElfHeader(fs.readFileSync(file).subarray(0, 64))?.machine;

for (const [arch, image, triple, elf] of [['aarch64', aarch64, 'aarch64-linux-gnu', 183], ['armhf', armhf, 'arm-linux-gnueabihf', 40]] as const) {
  test(`${arch}: --accel cross compiles C and C++ with the host's cross gcc; the programs run in the chroot`, async (t) => {
    if (!hostCrossVersions(arch).includes('12')) return t.fail(`the host has no ${triple} gcc 12: run scripts/setup-host.sh`);
    const ws = workspace();
    const script = [
      'set -e',
      'gcc -O2 -o tc t.c && ./tc',
      'g++ -O2 -o tcc t.cc && ./tcc',
      // The compiler is the host's cross cc1 (its .comment names the cross build), reached through the shim.
      `grep -q "^/usr/lib/gcc/${triple}/12/cc1\t" /run/imgbuild-accel/map && echo mapped`,
      // A tool that scrubs the environment still gets a working compiler.
      'env -i /usr/bin/g++ -o tcc2 t.cc && ./tcc2 >/dev/null && echo scrubbed ok',
      // The binds are read-only: the image's compiler cannot be written through them.
      `if echo x > /usr/lib/gcc/${triple}/12/cc1; then echo WRITABLE; else echo read-only; fi`,
      // dpkg refuses while the binds are up.
      'if dpkg --version >/dev/null 2>&1; then echo DPKG-RAN; else echo dpkg refused; fi',
    ].join('\n');
    const r = await imgbuild(['run', image, '--workspace', ws, '--accel', 'cross', '--', 'sh', '-c', script]);
    t.is(r.exitCode, 0, r.all);
    t.regex(r.all, /accel: host-native .*-gcc-12 for the image's gcc 12/);
    for (const line of ['c ok', 'c++ ok xxx', 'mapped', 'scrubbed ok', 'read-only', 'dpkg refused']) t.true(r.stdout.includes(line), `${line}\n${r.all}`);
    t.false(r.stdout.includes('WRITABLE'));
    t.is(machineOf(path.join(ws, 'tcc')), elf);
    fs.rmSync(ws, { recursive: true });
  });
}

// Raspberry Pi OS armhf's gcc defaults to armv6 with VFP in ARM mode; Debian's cross gcc to
// armv7-a Thumb-2, code an armv6 board cannot run (and qemu can, so only the objects tell). With
// no Raspberry Pi OS archive reachable here, a copy of the Debian armhf sample has its gcc driver's
// configure line rewritten to Raspberry Pi OS's target options: what imgbuild reads them from.
test("armhf: the host compiler follows the image gcc's target defaults (armv6, vfp, ARM mode), through ccache and env -i", async (t) => {
  const dir = tmpdir();
  const image = await copySparse(armhf, path.join(dir, 'armv6.img'));
  const debian = '--with-arch=armv7-a+fp --with-float=hard --with-mode=thumb';
  const rpi = '--with-arch=armv6 --with-fpu=vfp --with-float=hard'.padEnd(debian.length, ' ');
  const ws = workspace();
  const compile = 'set -e; gcc -O2 -c -o t.o t.c; env -i /usr/bin/g++ -O2 -c -o tcc.o t.cc; cpp -dM </dev/null | grep "define __ARM_ARCH "; cat /run/imgbuild-accel/cflags | tr "\\n" " "; echo';
  // First the unchanged image, so ccache holds armv7 objects of the same sources.
  const before = await imgbuild(['run', armhf, '--workspace', ws, '--accel', 'cross', '--', 'sh', '-c', compile]);
  t.is(before.exitCode, 0, before.all);
  const attrs = async (f: string) => (await execa('readelf', ['-A', path.join(ws, f)])).stdout;
  t.regex(await attrs('t.o'), /Tag_CPU_arch: v7/);
  await onRoot(image, 'perl -0777 -pi -e \'s/\\Q$ENV{FROM}\\E/$ENV{TO}/ or die "configure line not found\\n"\' usr/bin/arm-linux-gnueabihf-gcc-12', { env: { FROM: debian, TO: rpi } });
  const r = await imgbuild(['run', image, '--workspace', ws, '--accel', 'cross', '--', 'sh', '-c', compile]);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /with the image gcc's target defaults -march=armv6 -mfpu=vfp -marm/);
  t.regex(r.stdout, /#define __ARM_ARCH 6\n-march=armv6 -mfpu=vfp -marm/);
  for (const f of ['t.o', 'tcc.o']) {
    const a = await attrs(f);
    t.regex(a, /Tag_CPU_arch: v6\n/, `${f}: ${a}`);
    t.regex(a, /Tag_ARM_ISA_use: Yes/, f);
    t.regex(a, /Tag_FP_arch: VFPv2/, f);
    t.regex(a, /Tag_ABI_VFP_args: VFP registers/, f);
  }
  fs.rmSync(ws, { recursive: true });
  fs.rmSync(dir, { recursive: true });
});

// Distributions without multiarch (Arch Linux ARM, Buildroot, Yocto) keep gcc under its full
// triple and version, the C++ target headers inside /usr/include/c++/V, and crt files, libc.so
// and the C headers in plain /usr/lib and /usr/include. A copy of the aarch64 sample is
// rearranged so; the host's multiarch cross gcc must still find all of it.
test('aarch64: a compiler laid out without multiarch (gcc/aarch64-unknown-linux-gnu/12.2.0, /usr/lib crt files) compiles C and C++', async (t) => {
  const dir = tmpdir();
  const image = await copySparse(aarch64, path.join(dir, 'flat.img'));
  await onRoot(image, [
    'T=aarch64-linux-gnu U=aarch64-unknown-linux-gnu',
    'mkdir usr/lib/gcc/$U && mv usr/lib/gcc/$T/12 usr/lib/gcc/$U/12.2.0 && rmdir usr/lib/gcc/$T',
    'mv usr/include/c++/12 usr/include/c++/12.2.0 && mv usr/include/$T/c++/12 usr/include/c++/12.2.0/$U && rmdir usr/include/$T/c++',
    'for f in usr/lib/$T/*crt*.o usr/lib/$T/libc.so usr/lib/$T/libc.a usr/lib/$T/libc_nonshared.a usr/lib/$T/libm.so usr/lib/$T/libm.a; do [ ! -e $f ] || mv $f usr/lib/; done',
    'sed -i "s#/usr/lib/$T/#/usr/lib/#g" usr/lib/libc.so',
    'cp -a usr/include/$T/. usr/include/ && rm -r usr/include/$T',
    'rm -f usr/bin/gcc usr/bin/g++ usr/bin/cc usr/bin/c++',
    'ln -s $T-gcc-12 usr/bin/gcc && ln -s $T-g++-12 usr/bin/g++',
  ].join('\n'));
  const ws = workspace();
  const r = await imgbuild(['run', image, '--workspace', ws, '--accel', 'cross', '--', 'sh', '-c', 'set -e; gcc -O2 -o tc t.c && ./tc; g++ -O2 -o tcc t.cc && ./tcc; env -i /usr/bin/g++ -o tcc2 t.cc && ./tcc2 >/dev/null && echo scrubbed ok']);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /accel: host-native aarch64-linux-gnu-gcc-12 for the image's gcc 12\.2\.0/);
  t.regex(r.stdout, /c ok\nc\+\+ ok xxx\nscrubbed ok/);
  t.is(machineOf(path.join(ws, 'tcc')), 183);
  fs.rmSync(ws, { recursive: true });
  fs.rmSync(dir, { recursive: true });
});

const forcedTitle = '--accel-gcc forces another host gcc: the image gcc directory is bound under its version and still used';
const noGcc11 = hostCrossVersions('aarch64').includes('11') ? undefined : 'the host has no gcc-11-aarch64-linux-gnu (scripts/setup-host.sh installs it)';
if (noGcc11) {
  console.log(`skipped: ${forcedTitle}: ${noGcc11}`);
  test.skip(`${forcedTitle} [skipped: ${noGcc11}]`, () => {});
} else test(forcedTitle, async (t) => {
  const ws = workspace();
  const r = await imgbuild(['run', aarch64, '--workspace', ws, '--accel', 'cross', '--accel-gcc', '11', '--', 'sh', '-c', 'set -e; gcc -o tc t.c && ./tc; g++ -o tcc t.cc && ./tcc; grep GCC_EXEC_PREFIX /run/imgbuild-accel/env']);
  t.is(r.exitCode, 0, r.all);
  t.regex(r.all, /forced over the image's gcc 12/);
  t.regex(r.stdout, /c ok[\s\S]*c\+\+ ok xxx[\s\S]*GCC_EXEC_PREFIX=\/run\/imgbuild-accel\/gcc\//);
  fs.rmSync(ws, { recursive: true });
});

test('--accel cross with no host gcc of that version: exit 3 before anything is mounted, naming the package', async (t) => {
  const r = await imgbuild(['run', aarch64, '--accel', 'cross', '--accel-gcc', '99', '--', 'true']);
  t.is(r.exitCode, ExitCode.precondition, r.all);
  t.regex(r.all, /no host cross gcc 99 for aarch64-linux-gnu/);
  t.regex(r.all, /apt-get install gcc-99-aarch64-linux-gnu/);
  const b = await imgbuild([aarch64, '-t', `local:${hello}`, '--out', tmpdir(), '--accel', 'cross', '--accel-gcc', '99']);
  t.is(b.exitCode, ExitCode.precondition, b.all);
  t.notRegex(b.all, /mount \/proc/, 'the build stopped after reading the image');
});

test('build with accel; the repeat comes from the wheel cache without a session; a changed source builds again', async (t) => {
  const src = tmpdir();
  fs.cpSync(hello, src, { recursive: true });
  const out = tmpdir();
  const args = [aarch64, '-t', `local:${src}`, '--out', out, '--wheel-cache'];
  const first = await imgbuild(args);
  t.is(first.exitCode, 0, first.all);
  const m1 = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  t.regex(m1.wheels[0].accel, /^cross: host-native aarch64-linux-gnu-gcc-12/);
  t.is(m1.wheels[0].cached, undefined);
  // Written stored in the chroot, deflated on the host: every non-empty member deflated, the
  // manifest's hash that of the final file, the log saying so.
  const wheel = path.join(out, m1.wheels[0].file);
  t.deepEqual([...new Set(readZip(wheel).filter((e) => e.size > 0).map((e) => e.method))], [8]);
  t.is(await sha256(wheel), m1.wheels[0].sha256);
  t.regex(fs.readFileSync(m1.wheels[0].log, 'utf8'), /imgbuild: \S+\.whl rewritten on the host in \d+ ms: deflated \d+ member\(s\), set times to SOURCE_DATE_EPOCH/);

  const again = await imgbuild(args);
  t.is(again.exitCode, 0, again.all);
  t.regex(again.all, /from the wheel cache/);
  t.notRegex(again.all, /mount \/proc|enable aarch64 emulation/, 'a full hit opens no build session');
  const m2 = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  t.is(m2.wheels[0].sha256, m1.wheels[0].sha256);
  t.regex(m2.wheels[0].cached, /^[0-9a-f]{64}$/);

  fs.appendFileSync(path.join(src, 'hello.c'), '\n/* changed */\n');
  const changed = await imgbuild(args);
  t.is(changed.exitCode, 0, changed.all);
  t.notRegex(changed.all, /from the wheel cache/, 'a changed source is a miss');

  const forced = await imgbuild([...args, '--no-wheel-cache']);
  t.is(forced.exitCode, 0, forced.all);
  t.notRegex(forced.all, /from the wheel cache/);

  // Pure emulation leaves deflate to the backend, in the chroot; the host only sets the times.
  const emulated = await imgbuild([...args, '--no-wheel-cache', '--accel', 'none']);
  t.is(emulated.exitCode, 0, emulated.all);
  const m3 = JSON.parse(fs.readFileSync(path.join(out, 'manifest.json'), 'utf8'));
  t.deepEqual([...new Set(readZip(path.join(out, m3.wheels[0].file)).filter((e) => e.size > 0).map((e) => e.method))], [8]);
  t.notRegex(fs.readFileSync(m3.wheels[0].log, 'utf8'), /deflated \d+ member/);
  t.regex(fs.readFileSync(m3.wheels[0].log, 'utf8'), /rewritten on the host in \d+ ms: set times to SOURCE_DATE_EPOCH \d+ and normalised modes/);
  fs.rmSync(out, { recursive: true });
  fs.rmSync(src, { recursive: true });
});

// A board whose libstdc++ is older than its compiler: the image's g++ 12 links against
// libstdc++.so.6.0.30, while the libstdc++.so.6 the board loads is bullseye's 6.0.28 (up to
// GLIBCXX_3.4.28). A wheel that calls std::string::reserve() needs GLIBCXX_3.4.29: verification
// must refuse it, whichever compiler ran.
const mismatchTitle = 'verification refuses a wheel needing a newer libstdc++ than the board has, with the host compiler and emulated';
const oldLibstdcxx = debianPackage('bullseye', 'arm64', 'libstdc++6');
if ('unavailable' in oldLibstdcxx) {
  console.log(`skipped: ${mismatchTitle}: ${oldLibstdcxx.unavailable}`);
  test.skip(`${mismatchTitle} [skipped: ${oldLibstdcxx.unavailable}]`, () => {});
} else test(mismatchTitle, async (t) => {
  const dir = tmpdir();
  const image = await copySparse(aarch64, path.join(dir, 'old-runtime.img'));
  const lib = 'usr/lib/aarch64-linux-gnu';
  await onRoot(image, [
    `cp "$OLD/${lib}/libstdc++.so.6.0.28" ${lib}/`,
    `ln -sfn libstdc++.so.6.0.28 ${lib}/libstdc++.so.6`,
    // The compiler's link-time library stays gcc 12's own.
    `ln -sfn ../../../aarch64-linux-gnu/libstdc++.so.6.0.30 usr/lib/gcc/aarch64-linux-gnu/12/libstdc++.so`,
    `test -e ${lib}/libstdc++.so.6.0.30`,
  ].join('\n'), { env: { OLD: oldLibstdcxx.dir } });
  for (const mode of ['cross', 'none']) {
    const out = tmpdir();
    const r = await imgbuild([image, '-t', `local:${reserve}`, '--out', out, '--accel', mode, '--no-wheel-cache']);
    t.is(r.exitCode, ExitCode.failed, `--accel ${mode}\n${r.all}`);
    t.regex(r.all, /imgbuild_reserve[^\n]*\.so needs GLIBCXX_3\.4\.29 from libstdc\+\+\.so\.6, which the image's \/(usr\/)?lib\/aarch64-linux-gnu\/libstdc\+\+\.so\.6 \(libstdc\+\+\.so\.6\.0\.28\) does not define \(it has up to GLIBCXX_3\.4\.28\)/, `--accel ${mode}`);
    t.regex(r.all, /newer than its runtime libraries/);
    if (mode === 'cross') t.regex(r.all, /accel: host-native aarch64-linux-gnu-gcc-12/);
    else t.notRegex(r.all, /accel: host-native/);
    t.deepEqual(fs.readdirSync(out).filter((f) => f.endsWith('.whl')), [], 'no wheel reported');
    fs.rmSync(out, { recursive: true });
  }
  // The same wheel built for the unchanged image, handed to a build for the old one: refused
  // before anything is built on it, exit 3.
  const good = tmpdir();
  const built = await imgbuild([aarch64, '-t', `local:${reserve}`, '--out', good, '--no-wheel-cache']);
  t.is(built.exitCode, 0, built.all);
  const wheel = path.join(good, fs.readdirSync(good).find((f) => f.endsWith('.whl'))!);
  const out = tmpdir();
  const r = await imgbuild([image, '-t', `local:${hello}`, '--with-wheel', wheel, '--out', out]);
  t.is(r.exitCode, ExitCode.precondition, r.all);
  t.regex(r.all, /--with-wheel \S+imgbuild_reserve\S+\.whl does not fit the image:\n\s+- imgbuild_reserve\S*\.so needs GLIBCXX_3\.4\.29 from libstdc\+\+\.so\.6/);
  t.notRegex(r.all, /mount \/proc/, 'refused while reading the image');
  for (const d of [good, out, dir]) fs.rmSync(d, { recursive: true });
});

test('a build that runs out of memory under --memory-limit is killed, and the error says so and which --jobs to try', async (t) => {
  const out = tmpdir();
  const r = await imgbuild([aarch64, '-t', `local:${eat}`, '--out', out, '--memory-limit', '300M', '--jobs', '2']);
  t.is(r.exitCode, ExitCode.failed, r.all);
  if (/no memory limit for the build/.test(r.all)) {
    t.log(`skipped the out-of-memory check: ${/no memory limit for the build: (.*)/.exec(r.all)?.[1]}`);
    return;
  }
  t.regex(r.all, /ran out of memory: the build hit its 300 MiB limit with --jobs 2 .*try --jobs 1/);
  fs.rmSync(out, { recursive: true });
});
