// Issue 15's measure: onnx 1.17.0 (Debian trixie's upstream tarball) built through imgbuild with
// --accel cross against the same tree built natively on the host, as a ratio (goal <= 1.3x).
// bench/onnx.sh sets the host up and runs it; the report is printed and written to
// bench/results/onnx-DATE.txt.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { errorMessage } from '../lib/core/errors.js';
import { createRunner, type Run } from '../lib/core/runner.js';
import { safeRemoveTree } from '../lib/host/safe-remove.js';
import { jobsEnv } from '../lib/targets/types.js';
import { targets } from './report.js';
import { fetchSources } from './sources.js';
import { formatRatio, formatSeconds, median } from './stats.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheDir = process.env.IMGBUILD_CACHE_DIR ?? '/var/cache/imgbuild';
const version = '1.17.0';
const target = `onnx@${version}`;
// What the onnx recipe installs in the build layer and asks of pip, as Debian packages on the host.
const nativeDeps = ['cmake', 'protobuf-compiler', 'libprotobuf-dev', 'pybind11-dev', 'python3-dev', 'python3-protobuf', 'python3-numpy', 'python3-setuptools', 'python3-wheel'];
const usage = 'usage: sudo bash bench/onnx.sh [--reps N] [--jobs N] [--image IMAGE] [--accel cross|full] [--no-setup]';

interface Options {
  /** imgbuild's --accel: cross (compilers native) or full (Python and the build tools too). */
  accel: string;
  reps: number;
  jobs: number;
  image?: string;
}

interface Rep {
  native: number;
  whole: number;
  stage: number;
}

const say = (line: string) => process.stderr.write(`${line}\n`);

let stopping = false;
function checkStop(): void {
  if (stopping) throw new Error('interrupted');
}

// A terminal's Ctrl-C reaches the children too (same process group) and imgbuild cleans up after
// itself, so we stop after the current step rather than exit under it; a SIGTERM or SIGHUP sent
// to us alone is passed on as SIGINT.
function onSignals(): void {
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`bench: ${sig}: stopping after the current step (its own cleanup runs first)`);
    if (sig !== 'SIGINT') process.kill(0, 'SIGINT');
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, handler);
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: { reps: { type: 'string', default: '1' }, jobs: { type: 'string' }, image: { type: 'string' }, accel: { type: 'string', default: 'cross' }, help: { type: 'boolean', default: false } },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const count = (name: string, text: string) => {
    if (!/^[1-9]\d*$/.test(text)) throw new Error(`--${name} ${text} is not a positive number`);
    return Number(text);
  };
  if (!['cross', 'full'].includes(values.accel ?? 'cross')) throw new Error(`--accel ${values.accel}: cross or full`);
  return {
    accel: values.accel ?? 'cross',
    reps: count('reps', values.reps ?? '1'),
    jobs: values.jobs === undefined ? os.availableParallelism() : count('jobs', values.jobs),
    ...(values.image ? { image: path.resolve(values.image) } : {}),
  };
}

// The packages of `apt-get install` output's "NEW packages" list (what it actually installed).
function newPackages(aptOutput: string): string[] {
  const lines = aptOutput.split('\n');
  const start = lines.findIndex((l) => /^The following NEW packages will be installed/.test(l));
  if (start < 0) return [];
  const list: string[] = [];
  for (const l of lines.slice(start + 1)) {
    if (!/^\s/.test(l)) break;
    list.push(...l.trim().split(/\s+/));
  }
  return list;
}

async function ensureNativeDeps(run: Run): Promise<void> {
  const missing: string[] = [];
  for (const pkg of nativeDeps) {
    const r = await run('dpkg-query', ['-W', '--showformat=${db:Status-Abbrev}', pkg], { allowFailure: true, quiet: true });
    if (!r.stdout.startsWith('ii')) missing.push(pkg);
  }
  if (missing.length === 0) {
    say(`bench: the host has the native build's packages (${nativeDeps.join(' ')})`);
    return;
  }
  say(`bench: installing on the host: ${missing.join(' ')}`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  // A repository without a usable index fails update, not the install from the others.
  const upd = await run('apt-get', ['-q', 'update'], { env, allowFailure: true, quiet: true });
  if (upd.exitCode !== 0) say(`bench: apt-get update reported errors (continuing): ${upd.all.trim().split('\n').slice(-2).join(' / ')}`);
  const r = await run('apt-get', ['install', '-y', '--no-install-recommends', ...missing], { env, quiet: true });
  const installed = newPackages(r.stdout);
  say(`bench: installed ${installed.length > 0 ? installed.join(' ') : missing.join(' ')}`);
}

const wheelsIn = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((f) => /^onnx-.*\.whl$/.test(f)) : []);
const tail = (text: string, n: number) => text.trim().split('\n').slice(-n).join(' / ');

// Seconds of imgbuild's "build TARGET: done (1m03s | 45.2s)" line: its reporter prints stage ends
// so when stderr is not a terminal, --verbose or not.
function stageSeconds(stderr: string): number | undefined {
  const name = target.replace(/[.@]/g, '\\$&');
  const m = new RegExp(`^imgbuild: build ${name}: done \\((?:(\\d+)m(\\d+)s|(\\d+(?:\\.\\d+)?)s)\\)\\s*$`, 'm').exec(stderr);
  if (!m) return undefined;
  return m[3] !== undefined ? Number(m[3]) : Number(m[1]) * 60 + Number(m[2]);
}

// The recipe's own build (its env and front end) on a fresh copy of the tree: no objects of an
// earlier repetition, no ccache, no package index. Only the front end's command is timed.
async function nativeBuild(run: Run, tree: string, work: string, logs: string, jobs: number, rep: number): Promise<number> {
  const base = path.join(work, 'native');
  safeRemoveTree(base);
  fs.mkdirSync(base, { recursive: true });
  const dir = path.join(base, path.basename(tree));
  await run('cp', ['-a', tree, dir], { quiet: true });
  const log = path.join(logs, `native-${rep}.log`);
  fs.rmSync(log, { force: true });
  const env = {
    PATH: '/usr/sbin:/usr/bin:/sbin:/bin',
    HOME: path.join(work, 'home'),
    LANG: 'C.UTF-8',
    ONNX_ML: '1',
    CMAKE_ARGS: '-DONNX_USE_PROTOBUF_SHARED_LIBS=ON',
    ...jobsEnv(String(jobs)),
    CCACHE_DISABLE: '1',
    PIP_NO_INDEX: '1',
    PIP_CONFIG_FILE: '/dev/null',
  };
  const t0 = performance.now();
  const r = await run('python3', [path.join(repo, 'lib', 'build', 'build-wheel.py'), 'dist', '.'], { cwd: dir, env, extendEnv: false, logFile: log, allowFailure: true, quiet: true });
  const seconds = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`native build exited ${r.exitCode} (log ${log}): ${tail(r.all, 3)}`);
  const wheels = wheelsIn(path.join(dir, 'dist'));
  if (wheels.length === 0) throw new Error(`native build made no onnx wheel in dist/ (log ${log})`);
  say(`  native #${rep}: ${formatSeconds(seconds)} (${wheels.join(', ')})`);
  return seconds;
}

// The whole imgbuild command is timed; its build stage (the compile, comparable to the native
// build) is read from its stage line. --out is kept under the log directory for its logs/.
async function imgbuildBuild(run: Run, image: string, tarball: string, logs: string, o: { jobs: number; accel: string }, rep: number): Promise<{ whole: number; stage: number }> {
  const out = path.join(logs, `imgbuild-${rep}`);
  safeRemoveTree(out);
  const args = [path.join(repo, 'dist', 'imgbuild.mjs'), image, '--target', target, '--source', `onnx=${tarball}`, '--offline', '--runtime-apt', 'libprotobuf32'];
  args.push('--accel', o.accel, '--no-ccache', '--no-wheel-cache', '--jobs', String(o.jobs), '--out', out);
  const t0 = performance.now();
  const r = await run(process.execPath, args, { allowFailure: true, quiet: true });
  const whole = (performance.now() - t0) / 1000;
  const kept = path.join(logs, `imgbuild-${rep}.stderr`);
  fs.writeFileSync(kept, r.stderr);
  if (r.exitCode !== 0) throw new Error(`imgbuild exited ${r.exitCode} (stderr ${kept}, logs ${out}/logs): ${tail(r.stderr, 3)}`);
  const stage = stageSeconds(r.stderr);
  if (stage === undefined) throw new Error(`no "imgbuild: build ${target}: done (...)" line in imgbuild's stderr (${kept})`);
  const wheels = wheelsIn(out);
  if (wheels.length === 0) throw new Error(`imgbuild succeeded but left no onnx wheel in ${out}`);
  say(`  imgbuild #${rep}: ${formatSeconds(whole)} whole, build stage ${formatSeconds(stage)} (${wheels.join(', ')})`);
  return { whole, stage };
}

function formatOnnxReport(reps: Rep[], facts: { date: string; image: string; jobs: number; source: string; accel: string }): string {
  const native = median(reps.map((r) => r.native));
  const whole = median(reps.map((r) => r.whole));
  const stage = median(reps.map((r) => r.stage));
  const each = (k: keyof Rep) => (reps.length > 1 ? `  (${reps.map((r) => formatSeconds(r[k])).join(', ')})` : '');
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  return [
    `onnx ${version}: imgbuild --accel ${facts.accel} against a native host build (issues 15, 16)`,
    '',
    `${facts.date} · ${cpu}, ${os.availableParallelism()} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB · image ${facts.image}`,
    `source ${facts.source} · --jobs ${facts.jobs} · no ccache, no wheel cache, no package index · medians of ${reps.length}`,
    '',
    `${'native build on the host (build-wheel.py)'.padEnd(46)}${formatSeconds(native)}${each('native')}`,
    `${'imgbuild, whole command'.padEnd(46)}${formatSeconds(whole)}${each('whole')}`,
    `${`imgbuild, "build ${target}" stage`.padEnd(46)}${formatSeconds(stage)}${each('stage')}`,
    '',
    `build stage / native   ${formatRatio(stage / native)}   goal <= ${targets.accel}x: ${stage / native <= targets.accel ? 'met' : 'missed'}`,
    `whole / native         ${formatRatio(whole / native)}   (plus session, apt installs in the build layer, verification)`,
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (apt-get, imgbuild): sudo bash bench/onnx.sh');
  onSignals();
  const run = createRunner({ emit: () => {}, signal: new AbortController().signal });
  const work = fs.mkdtempSync('/var/tmp/imgbuild-bench-onnx-');
  const logs = path.join(cacheDir, 'bench-logs', 'onnx');
  safeRemoveTree(logs);
  fs.mkdirSync(logs, { recursive: true });
  fs.mkdirSync(path.join(work, 'home'));
  try {
    await ensureNativeDeps(run);
    const src = (await fetchSources(run, cacheDir, ['onnx/trixie'], say))['onnx/trixie']!;
    if (!src.version.startsWith(version)) throw new Error(`onnx/trixie is ${src.version}, not ${version}: the benchmark is of ${target}`);
    if (!src.tarball) throw new Error(`no upstream tarball beside ${src.dir} (a cache from before tarballs were kept): remove ${path.dirname(src.dir)} and run again`);
    const image = o.image ?? (await run(process.execPath, [path.join(repo, 'dist', 'imgbuild.mjs'), 'sample', '--arch', 'aarch64'])).stdout.trim().split('\n').at(-1)!;
    say(`bench: ${target} from ${path.basename(src.tarball)}; image ${image}; --jobs ${o.jobs}; ${o.reps} rep(s); logs ${logs}`);
    const reps: Rep[] = [];
    for (let rep = 1; rep <= o.reps; rep++) {
      checkStop();
      // imgbuild first: a host not set up for --accel cross fails in seconds, not after a native build.
      const img = await imgbuildBuild(run, image, src.tarball, logs, o, rep);
      checkStop();
      reps.push({ native: await nativeBuild(run, src.dir, work, logs, o.jobs, rep), ...img });
    }
    const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const report = formatOnnxReport(reps, { date, image: path.basename(image), jobs: o.jobs, source: path.basename(src.tarball), accel: o.accel });
    process.stdout.write(`\n${report}`);
    const file = path.join(repo, 'bench', 'results', `onnx-${o.accel === 'cross' ? '' : `${o.accel}-`}${date.slice(0, 10)}.txt`);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, report);
    say(`bench: written ${file}; build logs in ${logs}`);
    return 0;
  } finally {
    safeRemoveTree(work);
  }
}

main().then(
  (code) => process.exit(stopping ? 130 : code),
  (error: unknown) => {
    say(`bench: ${stopping ? 'interrupted' : `error: ${errorMessage(error)}`}`);
    process.exit(stopping ? 130 : 1);
  },
);
