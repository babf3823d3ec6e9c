import type { Argv } from 'yargs';
import { type AttachStrategy, build, errorMessage, formatPlan, parseDuration, UsageError } from '../../lib/index.js';
import { type GlobalArgs, runCli } from '../cli-context.js';
import { type AccelArgs, accelFromArgs, accelOptions, attachOption, privilegedOption, pythonOf, pythonOption, warnPrivileged } from './options.js';

export const command = ['build <image>', '$0 <image>'];
export const describe = 'Build wheels that match the image (the default verb: imgbuild IMAGE --target SPEC)';

export function builder(y: Argv) {
  return accelOptions(attachOption(y.positional('image', { type: 'string', demandOption: true, describe: 'the SD-card image file' })), 'auto')
    .option('target', { alias: 't', type: 'string', array: true, describe: 'what to build: torch@1.1.0, torchvision@0.4.0, onnx@1.11.0, onnxruntime@1.11.0, local:PATH, git:URL@REF; recipe options after commas (local:./b,needs=a). Repeat for several', requiresArg: true })
    .option('out', { alias: 'o', type: 'string', default: 'dist', describe: 'where wheels, manifest.json and logs/ go' })
    .option('timeout', { type: 'string', describe: 'stop the whole build after this long (90s, 45m, 2h), undo everything, exit 1' })
    .option('workspace', { type: 'string', describe: 'host directory for sources, build trees and the build layer (default: under the cache dir, emptied at the next build)' })
    .option('jobs', { alias: 'j', type: 'string', default: 'auto', describe: 'parallel compile jobs, or auto (CPUs, fewer if memory per job would not fit)' })
    .option('source', { type: 'string', array: true, default: [], describe: 'NAME=PATH: build target NAME from a local checkout or sdist instead of fetching it' })
    .option('with-wheel', { type: 'string', array: true, default: [], describe: 'a ready wheel to install first (e.g. torch for a torchvision build)' })
    .option('apt', { type: 'string', array: true, default: [], describe: 'Debian packages installed in the build layer for every target (a -dev library, pkg-config, cython3); per target: apt=PKG+PKG' })
    .option('env', { type: 'string', array: true, default: [], describe: 'NAME=VALUE in every target\'s build environment (e.g. SETUPTOOLS_SCM_PRETEND_VERSION=1.2.0); per target: env=NAME=VALUE' })
    .option('config-setting', { alias: 'C', type: 'string', array: true, default: [], describe: 'KEY=VALUE PEP 517 config setting for every target built by a Python build backend; per target: config=KEY=VALUE' })
    .option('runtime-apt', { type: 'string', array: true, default: [], describe: 'Debian packages the board has installed: their libraries count as the board\'s in verification, and the manifest lists them; per target: runtime=PKG+PKG' })
    .option('test-command', { type: 'string', describe: 'a shell command run in the chroot after the import check, with the wheel on PYTHONPATH ({wheel}, {project} are put in); a failure fails the target' })
    .option('offline', { type: 'boolean', default: false, describe: 'contact no Python package index, on the host or in the chroot: requirements come from the image, apt= packages and --find-links' })
    .option('index-url', { type: 'string', describe: 'the Python package index pip uses, on the host and in the chroot (default: the host\'s pip settings, else PyPI)' })
    .option('extra-index-url', { type: 'string', array: true, default: [], describe: 'more package indexes (e.g. https://www.piwheels.org/simple for Raspberry Pi boards)' })
    .option('find-links', { type: 'string', array: true, default: [], describe: 'a host directory of wheels and sdists pip may install from (bound read-only into the chroot)' })
    .option('persist', { type: 'boolean', default: false, describe: 'write the build\'s apt and pip installs into the image (default: the image stays unchanged)' })
    .option('pids-limit', { type: 'string', default: 'auto', describe: 'processes the build\'s commands may have at once (a pids cgroup): N, none, or auto (2048)' })
    .option('memory-limit', { type: 'string', default: 'auto', describe: 'memory limit (cgroup) for the build\'s commands: SIZE (e.g. 6G, 512M), none, or auto (what the host can spare)' })
    .option('wheel-cache', { type: 'boolean', default: process.env.IMGBUILD_WHEEL_CACHE !== '0', describe: 'answer from the wheel cache when image, source, recipe and compiler match an earlier verified build (--no-wheel-cache builds again)' })
    .option('privileged', privilegedOption)
    .option('python', pythonOption)
    .option('dry-run', { type: 'boolean', default: false, describe: 'print the whole plan (host steps and undo, apt, env, commands) and change nothing' })
    .option('json', { type: 'boolean', default: false, describe: 'print the manifest (with --dry-run: the plan) as JSON on stdout' })
    .example('$0 pynq.img --target torch@1.1.0 --source torch=/src/pytorch', 'PyTorch 1.1.0 for a PYNQ image from a local checkout')
    .example('$0 rpi.img -t local:./mypkg -o wheels', 'any Python project')
    .example('$0 rpi.img -t local:./markupsafe_2.1.2.orig.tar.gz --offline', 'a tarball of any name, no package index contacted')
    .example('$0 rpi.img -t local:./cffi-1.15.1.tar.gz,apt=libffi-dev --extra-index-url https://www.piwheels.org/simple', 'a system library for the build, and piwheels for its Python requirements')
    .example('$0 pynq.img -t local:./mypkg --toolchain-mirror http://archive.ubuntu.com/ubuntu', "native compilers of an Ubuntu image's own release, from an archive that carries the host's architecture");
}

interface Args extends GlobalArgs, AccelArgs {
  image: string;
  target?: string[];
  out: string;
  workspace?: string;
  jobs: string;
  source: string[];
  'with-wheel': string[];
  persist: boolean;
  'wheel-cache': boolean;
  'memory-limit': string;
  'pids-limit': string;
  'dry-run': boolean;
  attach: AttachStrategy | 'auto';
  'allow-block-device': boolean;
  apt: string[];
  env: string[];
  'config-setting': string[];
  'runtime-apt': string[];
  'test-command'?: string;
  offline: boolean;
  'index-url'?: string;
  'extra-index-url': string[];
  'find-links': string[];
  privileged: boolean;
  python?: string;
}

export function parseJobs(text: string): number | 'auto' {
  if (text === 'auto') return 'auto';
  if (!/^\d+$/.test(text) || Number(text) < 1) throw new UsageError(`--jobs ${text} is not a positive number or auto`, 'e.g. --jobs 2, or --jobs auto');
  return Number(text);
}

export function pidsLimit(text: string): { pidsLimit?: number } {
  if (text === 'auto') return {};
  if (text === 'none' || text === '0') return { pidsLimit: 0 };
  if (!/^\d+$/.test(text) || Number(text) < 16) throw new UsageError(`--pids-limit ${text} is not a number of processes (16 or more), none or auto`, 'e.g. --pids-limit 4096');
  return { pidsLimit: Number(text) };
}

export function memoryLimit(text: string): { memoryLimit?: number } {
  if (text === 'auto') return {};
  if (text === 'none' || text === '0') return { memoryLimit: 0 };
  const m = /^(\d+(?:\.\d+)?)([KMGT])i?B?$/i.exec(text);
  if (!m) throw new UsageError(`--memory-limit ${text} is not a size, none or auto`, 'e.g. --memory-limit 6G, 512M, none');
  const bytes = Math.floor(Number(m[1]) * 1024 ** ('KMGT'.indexOf(m[2]!.toUpperCase()) + 1));
  if (bytes < 64 * 1024 * 1024) throw new UsageError(`--memory-limit ${text} is below 64M`, 'a build needs more than that; e.g. --memory-limit 2G');
  return { memoryLimit: bytes };
}

/** An option given twice counts once: the last one wins, as in most tools. */
function last<T>(v: T | T[]): T {
  return Array.isArray(v) ? v[v.length - 1]! : v;
}

export async function handler(args: Args) {
  const given = (args as Args & { timeout?: string | string[] }).timeout;
  let timeout: { ms: number; text: string } | undefined;
  try {
    timeout = given === undefined ? undefined : { ms: parseDuration(String(last(given))), text: String(last(given)) };
  } catch (error) {
    process.stderr.write(`imgbuild: usage error: --timeout ${errorMessage(error)}\n`);
    process.exit(2);
  }
  await runCli(args, async (ctx) => {
    if (!args['dry-run']) warnPrivileged(args.privileged);
    const result = await build(ctx, {
      image: args.image,
      targets: (args.target ?? []).map(String),
      out: String(last(args.out)),
      workspace: args.workspace === undefined ? undefined : String(last(args.workspace)),
      jobs: parseJobs(String(last(args.jobs))),
      sources: args.source.map(String),
      withWheels: args['with-wheel'].map(String),
      persist: args.persist,
      dryRun: args['dry-run'],
      wheelCache: args['wheel-cache'],
      ...memoryLimit(String(last(args['memory-limit']))),
      ...pidsLimit(String(last(args['pids-limit']))),
      accel: accelFromArgs({ ...args, accel: last(args.accel) }),
      attach: args.attach,
      allowBlockDevice: args['allow-block-device'],
      apt: args.apt.map(String),
      env: args.env.map(String),
      configSettings: args['config-setting'].map(String),
      runtimeApt: args['runtime-apt'].map(String),
      ...(args['test-command'] !== undefined ? { testCommand: String(last(args['test-command'])) } : {}),
      privileged: args.privileged,
      ...(pythonOf(args.python) ? { python: pythonOf(args.python)! } : {}),
      pip: {
        offline: args.offline,
        ...(args['index-url'] !== undefined ? { indexUrl: String(last(args['index-url'])) } : {}),
        extraIndexUrls: args['extra-index-url'].map(String),
        findLinks: args['find-links'].map(String),
      },
    });
    if (args['dry-run']) {
      process.stdout.write(args.json ? `${JSON.stringify(result.plan, null, 2)}\n` : `${formatPlan(result.plan)}\n`);
      return;
    }
    const m = result.manifest!;
    if (args.json) {
      process.stdout.write(`${JSON.stringify(m, null, 2)}\n`);
      return;
    }
    const mine = m.wheels.filter((w) => result.plan.targets.some((t) => t.id === w.target));
    for (const w of mine) process.stdout.write(`${result.plan.out}/${w.file}\n`);
    process.stderr.write(`imgbuild: ${mine.length} wheel(s) verified for ${m.image.os.PRETTY_NAME ?? args.image} (${m.image.wheelTag}); manifest: ${result.plan.out}/manifest.json\n`);
  }, timeout ? { timeout } : {});
}
