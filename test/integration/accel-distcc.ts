// --accel distcc on the aarch64 sample image: compile jobs from the emulated chroot go through the
// host's distcc to a distccd started on 127.0.0.1 for the test, whose own log must show each
// remote compile; the objects are aarch64 and the programs run in the chroot. A server that is
// down gives an error naming it (never a silent local compile or a hang), and --accel distcc
// without servers is a usage error that touches nothing. The host is the same after every test.
import fs from 'node:fs';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { hostCrossVersions } from '../../lib/accel/index.js';
import { readElfHeader } from '../../lib/parse/elf.js';
import { type HostContext, hostUnchanged, imgbuild, sampleSync, tmpdir } from '../helpers/cli.js';
import { distccMissing, freePort, groupMembers, startDistccd } from '../helpers/distccd.js';

const test = anyTest as TestFn<HostContext>;
hostUnchanged(test);

const aarch64 = sampleSync('aarch64');
// The sample image's gcc is 12: distccd needs the same cross gcc and its /usr/lib/distcc links.
const missing =
  distccMissing() ??
  (!hostCrossVersions('aarch64').includes('12') || !fs.existsSync('/usr/bin/aarch64-linux-gnu-g++-12')
    ? 'the host has no gcc-12-aarch64-linux-gnu and g++-12-aarch64-linux-gnu'
    : ['aarch64-linux-gnu-gcc-12', 'aarch64-linux-gnu-g++-12'].some((n) => !fs.existsSync(`/usr/lib/distcc/${n}`))
      ? 'distccd would refuse the cross compilers: no /usr/lib/distcc/aarch64-linux-gnu-{gcc,g++}-12 (run update-distcc-symlinks)'
      : undefined);

/** Declare a test that cannot run on this host as skipped, with the reason in its title and the log. */
function skip(title: string, why: string): void {
  test.skip(`${title} [skipped: ${why}]`, () => {});
  console.log(`skipped: ${title}: ${why}`);
}

/** A workspace with a C and a C++ program; `salt` makes the sources unlike any cached before. */
function workspace(salt = ''): string {
  const ws = tmpdir('imgbuild-distcc-ws-');
  fs.writeFileSync(path.join(ws, 'hello.c'), `#include <stdio.h>\nint main(void) { puts("hello from C"); return 0; }\n${salt}`);
  fs.writeFileSync(path.join(ws, 'hello.cpp'), `#include <iostream>\n#include <string>\nint main() { std::string s = "hello from C++"; std::cout << s << std::endl; return 0; }\n${salt}`);
  return ws;
}

/** Run `body` with a fresh distccd; it is stopped (whole process group) whatever happens. */
async function withDistccd<T>(body: (d: Awaited<ReturnType<typeof startDistccd>>) => Promise<T>): Promise<T> {
  const dir = tmpdir('imgbuild-distccd-');
  const d = await startDistccd(dir);
  try {
    return await body(d);
  } finally {
    await d.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const compileAndRun = [
  'set -e',
  'cd /workspace',
  'gcc -O2 -c hello.c -o hello-c.o',
  'g++ -O2 -c hello.cpp -o hello-cpp.o',
  'gcc hello-c.o -o hello-c',
  'g++ hello-cpp.o -o hello-cpp',
  './hello-c',
  './hello-cpp',
].join('\n');

if (missing) {
  skip('--accel distcc: C and C++ compiled by distccd, aarch64 objects that run in the chroot', missing);
  skip('--accel distcc with ccache: a miss goes to distccd, a hit does not', missing);
  skip('--accel distcc: a server that is down is named, before and during the build', missing);
} else {
  test('--accel distcc: C and C++ compiled by distccd, aarch64 objects that run in the chroot', async (t) => {
    const ws = workspace();
    try {
      await withDistccd(async (d) => {
        const r = await imgbuild(['run', aarch64, '--workspace', ws, '--accel', 'distcc', '--distcc-hosts', d.spec, '--no-ccache', '--', 'sh', '-c', compileAndRun]);
        t.is(r.exitCode, 0, r.all);
        t.regex(r.stdout, /^hello from C$/m);
        t.regex(r.stdout, /^hello from C\+\+$/m);
        for (const o of ['hello-c.o', 'hello-cpp.o', 'hello-c', 'hello-cpp']) t.is(readElfHeader(fs.readFileSync(path.join(ws, o)))?.machine, 183, `${o} is aarch64`);
        // distccd's own record: the probes imgbuild sends first, then both compiles of the build,
        // under the cross drivers' bare names (what distccd whitelists).
        const jobs = d.jobs();
        t.log(jobs.join('\n'));
        t.true(jobs.some((l) => /COMPILE_OK .* aarch64-linux-gnu-gcc-12 hello\.c$/.test(l)), d.log());
        t.true(jobs.some((l) => /COMPILE_OK .* aarch64-linux-gnu-g\+\+-12 hello\.cpp$/.test(l)), d.log());
        t.true(jobs.some((l) => /COMPILE_OK .* aarch64-linux-gnu-gcc-12 probe\.c$/.test(l)), 'the server was probed');
        t.false(jobs.some((l) => !/COMPILE_OK/.test(l)), 'every job went well');
        t.deepEqual(jobs.map((l) => l.split(' ').at(-1)).sort(), ['hello.c', 'hello.cpp', 'probe.c', 'probe.cc'], 'compiles only: links stay local');
      });
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
    }
  });

  test('--accel distcc with ccache: a miss goes to distccd, a hit does not', async (t) => {
    // A private cache dir: a cold ccache, and nothing added to the host's own cache.
    const cache = tmpdir('imgbuild-distcc-cache-');
    const ws = workspace(`/* ${cache} */\n`);
    try {
      await withDistccd(async (d) => {
        const script = 'set -e; cd /workspace; gcc -O2 -c hello.c -o a.o; gcc -O2 -c hello.c -o b.o; cmp a.o b.o';
        const r = await imgbuild(['--cache-dir', cache, 'run', aarch64, '--workspace', ws, '--accel', 'distcc', '--distcc-hosts', d.spec, '--', 'sh', '-c', script]);
        t.is(r.exitCode, 0, r.all);
        t.is(readElfHeader(fs.readFileSync(path.join(ws, 'a.o')))?.machine, 183);
        const builds = d.jobs().filter((l) => / hello\.c$/.test(l));
        t.is(builds.length, 1, d.log());
        t.regex(builds[0]!, /COMPILE_OK .* aarch64-linux-gnu-gcc-12 hello\.c$/);
      });
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
      fs.rmSync(cache, { recursive: true, force: true });
    }
  });

  test('--accel distcc: a server that is down is named, before and during the build', async (t) => {
    const ws = workspace();
    try {
      await withDistccd(async (d) => {
        // Before: the probe compile fails, imgbuild stops with a precondition error naming the host.
        const down = `127.0.0.1:${await freePort()}`;
        const r0 = await imgbuild(['run', aarch64, '--workspace', ws, '--accel', 'distcc', '--distcc-hosts', d.spec, down, '--', 'true']);
        t.is(r0.exitCode, 3, r0.all);
        t.regex(r0.stderr, new RegExp(`${down.replace(/\./g, '\\.')}: aarch64-linux-gnu-gcc-12 failed .*Connection refused`));
        t.notRegex(r0.stderr, new RegExp(`${d.spec.replace(/\./g, '\\.')}:`), 'only the host that is down is named');

        // During: the server goes away between two compiles; the second fails with distcc's
        // message instead of compiling locally behind the user's back.
        const script = 'cd /workspace; gcc -c hello.c -o first.o || exit 10; touch go; while [ ! -e stopped ]; do sleep 0.1; done; gcc -c hello.c -o second.o';
        let finished = false;
        const watcher = (async () => {
          while (!finished && !fs.existsSync(path.join(ws, 'go'))) await new Promise((r) => setTimeout(r, 100));
          await d.stop();
          fs.writeFileSync(path.join(ws, 'stopped'), '');
        })();
        const r = await imgbuild(['run', aarch64, '--workspace', ws, '--accel', 'distcc', '--no-ccache', '--distcc-hosts', d.spec, '--', 'sh', '-c', script]);
        finished = true;
        await watcher;
        t.is(r.exitCode, 116, r.all); // distcc's EXIT_DISTCC_FAILED
        t.true(fs.existsSync(path.join(ws, 'first.o')));
        t.false(fs.existsSync(path.join(ws, 'second.o')), 'no silent local compile');
        t.regex(r.stderr, /failed to distribute and fallbacks are disabled/);
        t.regex(r.stderr, new RegExp(`connect to 127\\.0\\.0\\.1:${d.port} failed: Connection refused`));
      });
    } finally {
      fs.rmSync(ws, { recursive: true, force: true });
    }
  });
}

test('--accel distcc without --distcc-hosts, or hosts without --accel distcc: usage error, nothing opened', async (t) => {
  for (const args of [
    ['--accel', 'distcc'],
    ['--accel', 'cross', '--distcc-hosts', '127.0.0.1'],
    ['--accel', 'distcc', '--distcc-hosts', 'user@buildbox'],
    ['--accel', 'distcc', '--distcc-hosts', 'buildbox,cpp,lzo'],
  ]) {
    const r = await imgbuild(['run', aarch64, ...args, '--', 'true']);
    t.is(r.exitCode, 2, `${args.join(' ')}: ${r.all}`);
    t.regex(r.stderr, /distcc/);
    // Nothing was opened: no session stages ran (the host snapshot after the test checks the rest).
    t.notRegex(r.all, /lock image|attach partition|mount \/proc/, args.join(' '));
  }
});

if (!missing) {
  test('the distccd helper leaves no process behind', async (t) => {
    const dir = tmpdir('imgbuild-distccd-');
    try {
      const d = await startDistccd(dir);
      const pgid = Number(fs.readFileSync(path.join(dir, 'distccd.pid'), 'utf8'));
      t.true(groupMembers(pgid).length >= 2, 'distccd and its preforked workers');
      await d.stop();
      t.deepEqual(groupMembers(pgid), []);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
}
