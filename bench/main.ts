// The benchmark driver (bench/run.sh runs it after setting up the host): the same real projects
// built natively, with the host's cross compiler, emulated and with each accel mode; session
// set-up and tear-down against the same mounts by hand; wheel builds through imgbuild with a cold
// and a warm ccache and from the wheel cache. Prints one report and writes it to bench/results.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Arch, archTable, parseArch } from '../lib/core/arch.js';
import { errorMessage } from '../lib/core/errors.js';
import type { ImgbuildEvent } from '../lib/core/events.js';
import { shellJoin } from '../lib/core/quote.js';
import { createRunner } from '../lib/core/runner.js';
import { safeRemoveTree } from '../lib/host/safe-remove.js';
import { type Capabilities, capabilities } from './cli-help.js';
import { startDistccd } from './distccd.js';
import { type Bench, chrootBuild, hostBuild, type Outcome, timeCommand } from './measure.js';
import { type BenchResults, type TreesResult, type BuildRow, formatReport } from './report.js';
import { measureSession, rawScriptPath } from './session.js';
import { fetchSources, type SourceTree } from './sources.js';
import { addRep, formatSeconds } from './stats.js';
import { measureWheel } from './wheel.js';
import { type CrossTools, selectWorkloads, type Workload } from './workloads.js';

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const cacheDir = process.env.IMGBUILD_CACHE_DIR ?? '/var/cache/imgbuild';
const parts = ['builds', 'session', 'wheel', 'trees'] as const;
type Part = (typeof parts)[number];

const usage = `usage: bench/run.sh [--reps N] [--quick] [--session-reps N] [--image IMAGE] [--arch aarch64|armhf]
                    [--only lua,tinyxml2,markupsafe,brotli] [--parts builds,session,wheel,trees]
                    [--wheel-project ID] [--results FILE] [--verbose] [--no-setup]`;

interface Options {
  reps: number;
  sessionReps: number;
  image?: string;
  arch: Arch;
  only?: string[];
  parts: Part[];
  wheelProject: string;
  results: string;
  verbose: boolean;
  quick: boolean;
}

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      reps: { type: 'string' },
      quick: { type: 'boolean', default: false },
      'session-reps': { type: 'string' },
      image: { type: 'string' },
      arch: { type: 'string', default: 'aarch64' },
      only: { type: 'string' },
      parts: { type: 'string' },
      'wheel-project': { type: 'string', default: 'brotli' },
      results: { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`${usage}\n`);
    process.exit(0);
  }
  const count = (name: string, text: string | undefined, dflt: number) => {
    if (text === undefined) return dflt;
    if (!/^[1-9]\d*$/.test(text)) throw new Error(`--${name} ${text} is not a positive number`);
    return Number(text);
  };
  const quick = values.quick ?? false;
  // Five: a 2 s build varies by about 10% between runs here, too much for a median of 3 against a 1.3x target.
  const reps = count('reps', values.reps, quick ? 1 : 5);
  const arch = parseArch(values.arch ?? 'aarch64');
  if (!arch) throw new Error(`unknown --arch ${values.arch}`);
  const list = (s: string | undefined) => s?.split(',').map((x) => x.trim()).filter(Boolean);
  const chosen = list(values.parts) ?? [...parts];
  const bad = chosen.filter((x) => !(parts as readonly string[]).includes(x));
  if (bad.length > 0) throw new Error(`unknown --parts ${bad.join(', ')} (known: ${parts.join(', ')})`);
  return {
    reps,
    quick,
    sessionReps: count('session-reps', values['session-reps'], quick ? 3 : 10),
    ...(values.image ? { image: path.resolve(values.image) } : {}),
    arch,
    ...(values.only ? { only: list(values.only)! } : {}),
    parts: chosen as Part[],
    wheelProject: values['wheel-project'] ?? 'brotli',
    results: path.resolve(values.results ?? path.join(repo, 'bench', 'results', quick ? 'quick.md' : 'latest.md')),
    verbose: values.verbose ?? false,
  };
}

let stopping = false;
function onSignals(): void {
  const handler = (sig: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`bench: ${sig}: stopping after the current step (its own cleanup runs first)\n`);
    // A terminal's Ctrl-C already reached the children (same process group); a SIGTERM or SIGHUP
    // sent to us alone is passed on as SIGINT, which imgbuild and raw-session.sh clean up after.
    if (sig !== 'SIGINT') process.kill(0, 'SIGINT');
  };
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(sig, handler);
}

const say = (line: string) => process.stderr.write(`${line}\n`);

function checkStop(): void {
  if (stopping) throw new Error('interrupted');
}

async function main(): Promise<number> {
  const o = parseOptions(process.argv.slice(2));
  if (process.getuid?.() !== 0) throw new Error('the benchmark needs root (imgbuild sessions): sudo bash bench/run.sh');
  onSignals();
  // The tests' switch: a benchmark of the wheel cache needs it on.
  delete process.env.IMGBUILD_WHEEL_CACHE;
  const emit = (e: ImgbuildEvent) => {
    if (o.verbose && e.kind === 'cmd') say(`$ ${shellJoin(e.argv).slice(0, 300)}`);
  };
  // Never aborted: children share our process group and get a terminal's Ctrl-C themselves, so
  // imgbuild cleans up after itself instead of being killed.
  const run = createRunner({ emit, signal: new AbortController().signal });
  const imgbuild = [process.execPath, path.join(repo, 'dist', 'imgbuild.mjs')];
  const work = fs.mkdtempSync('/var/tmp/imgbuild-bench-');
  const logs = path.join(cacheDir, 'bench-logs');
  safeRemoveTree(logs);
  fs.mkdirSync(logs, { recursive: true });
  const hostEnv = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', HOME: path.join(work, 'home'), LANG: 'C.UTF-8' };
  fs.mkdirSync(hostEnv.HOME);
  const jobs = os.availableParallelism();
  try {
    const image = o.image ?? (await run(imgbuild[0]!, [imgbuild[1]!, 'sample', '--arch', o.arch, '--table', 'mbr'])).stdout.trim().split('\n').at(-1)!;
    const b: Bench = { run, imgbuild, image, work, logs, jobs, hostEnv };
    const facts = JSON.parse((await run(imgbuild[0]!, [imgbuild[1]!, 'inspect', image, '--json'])).stdout) as { arch: Arch; os: { PRETTY_NAME?: string } };
    const caps = capabilities(
      (await run(imgbuild[0]!, [imgbuild[1]!, 'run', '--help'])).stdout,
      (await run(imgbuild[0]!, [imgbuild[1]!, 'build', '--help'])).stdout,
    );
    const notes: string[] = [];
    const accelModes = caps.runAccel.filter((m) => m === 'cross' || m === 'full' || m === 'distcc');
    if (!caps.runHasAccel) notes.push('this imgbuild has no --accel option: accel modes skipped, emulated = plain `imgbuild run`');
    if (caps.runHasAccel && !caps.runAccel.includes('distcc')) notes.push('accel distcc skipped: `imgbuild run --help` lists no distcc mode');
    say(`bench: image ${image} (${facts.arch}, ${facts.os.PRETTY_NAME ?? '?'}); accel modes: ${accelModes.join(', ') || 'none'}; ${o.reps} rep(s); scratch ${work}; logs ${logs}`);

    const workloads = o.parts.includes('builds') ? selectWorkloads(o.only) : [];
    const wheelNeeded = o.parts.includes('wheel') ? [selectWorkloads([o.wheelProject])[0]!] : [];
    const sources = await fetchSources(run, cacheDir, [...new Set([...workloads, ...wheelNeeded].map((w) => w.source))], say);

    const results: BenchResults = {
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      host: hostSummary(),
      image: `${path.basename(image)} (${facts.os.PRETTY_NAME ?? facts.arch})`,
      commit: await commitOf(b),
      reps: o.reps,
      sessionReps: o.sessionReps,
      jobs,
      accelModes,
      builds: [],
      notes,
    };

    if (workloads.length > 0) {
      // --accel distcc sends compile jobs to a distccd: one of our own on this host, for this run.
      const distccd = accelModes.includes('distcc') ? await startDistccd(b, jobs) : undefined;
      try {
        results.builds = await measureBuilds(b, caps, accelModes, workloads, sources, o, facts.arch, notes, distccd?.host);
        if (distccd) {
          const done = distccd.jobsDone();
          notes.push(`accel distcc: compile jobs go to a distccd the benchmark starts on this host (${distccd.host}), so the column shows distcc's cost, not a gain; it compiled ${done} jobs`);
          if (done === 0) notes.push(`**accel distcc distributed nothing**: distcc fell back to compiling locally, so that column is cross plus distcc's failed attempt (logs: ${logs}/*-accel-distcc.log, DISTCC_VERBOSE=1 in a run shows why)`);
        }
      } finally {
        await distccd?.stop();
      }
    }
    checkStop();
    if (o.parts.includes('trees') && caps.runAccel.includes('full')) {
      say('bench: toolchain and Python trees in a fresh cache (the first --accel full session)');
      results.trees = await measureTrees(b, path.join(work, 'fresh-cache'));
    }
    checkStop();
    if (o.parts.includes('session')) {
      say('bench: session set-up + tear-down');
      results.session = await measureSession(b, caps, { reps: o.sessionReps, arch: facts.arch, rawScript: rawScriptPath(repo), say, stopping: () => stopping });
    }
    checkStop();
    const w = wheelNeeded[0];
    if (w) {
      say(`bench: wheel builds through imgbuild (${w.id})`);
      results.wheel = await measureWheel(b, caps, { tree: sources[w.source]!.dir, project: w.id, reps: o.reps, say, stopping: () => stopping });
    }
    checkStop();

    const report = formatReport(results);
    process.stdout.write(`\n${report}`);
    fs.mkdirSync(path.dirname(o.results), { recursive: true });
    fs.writeFileSync(o.results, report);
    fs.writeFileSync(o.results.replace(/\.md$/, '.json'), `${JSON.stringify(results, null, 2)}\n`);
    say(`bench: written ${o.results} (and .json); build logs in ${logs}`);
    return 0;
  } finally {
    safeRemoveTree(work);
  }
}

async function measureBuilds(
  b: Bench,
  caps: Capabilities,
  accelModes: string[],
  workloads: Workload[],
  sources: Record<string, SourceTree>,
  o: Options,
  arch: Arch,
  notes: string[],
  distccHost: string | undefined,
): Promise<BuildRow[]> {
  const cross = await findCrossTools(b, arch);
  if ('missing' in cross) notes.push(`host cross column skipped: ${cross.missing}`);
  const none = caps.runHasAccel ? ['--accel', 'none'] : [];
  // Without ccache: every repetition must compile (hits are measured by the wheel part).
  const accelArgs = (m: string) => ['--accel', m, ...(caps.runCcache ? ['--no-ccache'] : []), ...(m === 'distcc' && distccHost ? ['--distcc-hosts', distccHost] : [])];
  const rows: BuildRow[] = workloads.map((w) => ({
    id: w.id,
    title: `${w.title}, ${sources[w.source]!.version}`,
    compileHeavy: w.compileHeavy,
    native: { kind: 'ok', seconds: [] },
    cross: 'na' in w.cross ? { kind: 'skipped', reason: w.cross.na } : 'missing' in cross ? { kind: 'skipped', reason: cross.missing } : { kind: 'ok', seconds: [] },
    emulated: { kind: 'ok', seconds: [] },
    accel: Object.fromEntries(accelModes.map((m) => [m, { kind: 'ok', seconds: [] }])),
  }));
  for (let rep = 1; rep <= o.reps; rep++) {
    for (const [i, w] of workloads.entries()) {
      const row = rows[i]!;
      const tree = sources[w.source]!.dir;
      const steps: [string, () => Measured, (m: Measured) => void, () => Promise<Outcome>][] = [
        ['native', () => row.native, (m) => (row.native = m), () => hostBuild(b, tree, w.build(b.jobs), `${w.id}-native`)],
        ['host cross', () => row.cross, (m) => (row.cross = m), () => hostBuild(b, tree, typeof w.cross === 'function' && !('missing' in cross) ? w.cross(b.jobs, cross) : 'false', `${w.id}-cross`)],
        ['emulated', () => row.emulated, (m) => (row.emulated = m), () => chrootBuild(b, tree, w.build(b.jobs), none, `${w.id}-emulated`)],
        ...accelModes.map(
          (m): [string, () => Measured, (x: Measured) => void, () => Promise<Outcome>] => [
            `accel ${m}`,
            () => row.accel[m]!,
            (x) => (row.accel[m] = x),
            () => chrootBuild(b, tree, w.build(b.jobs), accelArgs(m), `${w.id}-accel-${m}`),
          ],
        ),
      ];
      for (const [label, get, set, measure] of steps) {
        checkStop();
        if (get().kind !== 'ok') continue;
        const t0 = performance.now();
        const out = await measure();
        checkStop();
        set(out.ok ? addRep(get(), out.seconds) : { kind: 'failed', reason: out.reason });
        say(`  ${w.id} ${label} #${rep}: ${out.ok ? `${formatSeconds(out.seconds)} (whole step ${formatSeconds((performance.now() - t0) / 1000)})` : `FAILED: ${out.reason}`}`);
      }
    }
  }
  return rows;
}

type Measured = BuildRow['native'];

/** The first `imgbuild run --accel full -- true` in an empty cache: it makes the trees the image needs (none when the host has its gcc and Python). */
async function measureTrees(b: Bench, cache: string): Promise<TreesResult> {
  const [node, ...cli] = b.imgbuild;
  const first = await timeCommand(b, node!, [...cli, '--cache-dir', cache, 'run', b.image, '--accel', 'full', '--', 'true']);
  const again = await timeCommand(b, node!, [...cli, '--cache-dir', cache, 'run', b.image, '--accel', 'full', '--', 'true']);
  const dir = path.join(cache, 'toolchains');
  const trees = fs.existsSync(dir)
    ? fs.readdirSync(dir).filter((n) => fs.existsSync(path.join(dir, n, 'imgbuild-toolchain.json'))).map((name) => ({ name, bytes: (JSON.parse(fs.readFileSync(path.join(dir, name, 'imgbuild-toolchain.json'), 'utf8')) as { bytes: number }).bytes }))
    : [];
  return { first: first.ok ? { kind: 'ok', seconds: [first.seconds] } : { kind: 'failed', reason: first.reason }, again: again.ok ? { kind: 'ok', seconds: [again.seconds] } : { kind: 'failed', reason: again.reason }, trees };
}

/** The host's cross gcc for the image's triplet, of the same major version as the image's gcc should be. */
async function findCrossTools(b: Bench, arch: Arch): Promise<CrossTools | { missing: string }> {
  const t = archTable[arch].triplet;
  const major = (await b.run('gcc', ['-dumpversion'], { env: b.hostEnv, extendEnv: false, quiet: true, allowFailure: true })).stdout.trim().split('.')[0];
  const tools = { cc: `${t}-gcc-${major}`, cxx: `${t}-g++-${major}`, ar: `${t}-ar`, ranlib: `${t}-ranlib` };
  for (const tool of Object.values(tools)) {
    const found = (b.hostEnv.PATH ?? '').split(':').some((d) => fs.existsSync(path.join(d, tool)));
    if (!found) return { missing: `${tool} is not installed (apt-get install gcc-${major}-${t} g++-${major}-${t})` };
  }
  return tools;
}

function hostSummary(): string {
  const cpu = os.cpus()[0]?.model.replace(/\s+/g, ' ').trim() ?? 'unknown CPU';
  let pretty = '';
  try {
    pretty = /^PRETTY_NAME="?([^"\n]*)/m.exec(fs.readFileSync('/etc/os-release', 'utf8'))?.[1] ?? '';
  } catch {
    // no os-release
  }
  return `${cpu}, ${os.availableParallelism()} CPUs, ${Math.round(os.totalmem() / 2 ** 30)} GiB, Linux ${os.release()}${pretty ? `, ${pretty}` : ''}`;
}

async function commitOf(b: Bench): Promise<string> {
  const head = await b.run('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'], { allowFailure: true, quiet: true });
  const dirty = await b.run('git', ['-C', repo, 'status', '--porcelain', '--untracked-files=no', '--', 'lib', 'bin', 'bench'], { allowFailure: true, quiet: true });
  return head.exitCode === 0 ? `${head.stdout.trim()}${dirty.stdout.trim() ? '+changes' : ''}` : 'unknown';
}

main().then(
  (code) => process.exit(stopping ? 130 : code),
  (error: unknown) => {
    say(`bench: ${stopping ? 'interrupted' : `error: ${errorMessage(error)}`}`);
    process.exit(stopping ? 130 : 1);
  },
);
