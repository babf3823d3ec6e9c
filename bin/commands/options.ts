import type { Argv } from 'yargs';
import { type AccelMode, type AccelRequest, type AttachStrategy, accelModes, attachStrategies, checkDistccRequest, type SessionOptions, type ToolchainChoice, toolchainChoices, UsageError } from '../../lib/index.js';

export function attachOption<T>(y: Argv<T>) {
  return y
    .option('attach', {
      choices: ['auto', ...attachStrategies] as const,
      default: 'auto' as const,
      describe: 'how to attach partitions: kpartx, partscan (losetup -P), partx, offset; auto picks what this host supports',
    })
    .option('allow-block-device', { type: 'boolean', default: false, describe: 'accept a block device (a real SD card) instead of an image file' });
}

export function sessionOptions<T>(y: Argv<T>) {
  return attachOption(y)
    .option('privileged', privilegedOption)
    .option('python', pythonOption)
    .option('workspace', { type: 'string', describe: 'host directory bound at /workspace in the chroot (nosuid,nodev)' })
    .option('rw', { type: 'boolean', default: false, describe: 'write into the image (default: the image is read-only under a throwaway layer)' });
}

export const pythonOption = {
  type: 'string',
  describe: 'the image\'s Python to use instead of /usr/bin/python3: a venv\'s or conda\'s bin/python3 (PYNQ 3: /usr/local/share/pynq-venv/bin/python3); imgbuild inspect lists them',
  requiresArg: true,
} as const;

/** --python's value (the last one given), or undefined. */
export function pythonOf(v: unknown): string | undefined {
  return v === undefined ? undefined : String(Array.isArray(v) ? v.at(-1) : v);
}

export const privilegedOption = {
  type: 'boolean',
  default: false,
  describe: 'open the box: commands in the image keep every capability (mount, mknod, ptrace, chroot, ...) and may gain privileges; for a user who knows why',
} as const;

/** Says, once, that the box is open. */
export function warnPrivileged(privileged: boolean): void {
  if (privileged) process.stderr.write('imgbuild: warning: --privileged: code run in the image keeps every capability (it can mount, make device nodes and reach the host)\n');
}

export interface SessionArgs {
  image: string;
  attach: AttachStrategy | 'auto';
  workspace?: string;
  rw: boolean;
  'allow-block-device': boolean;
  privileged: boolean;
  python?: string;
}

/** The session the run and shell verbs open: a throwaway layer over the image unless --rw. */
export function sessionFromArgs(args: SessionArgs, verb: string, hostPts: boolean): SessionOptions {
  warnPrivileged(args.privileged);
  return {
    image: args.image,
    mode: args.rw ? 'rw' : 'overlay',
    verb,
    attach: args.attach,
    workspace: args.workspace,
    allowBlockDevice: args['allow-block-device'],
    hostPts,
    privileged: args.privileged,
    ...(pythonOf(args.python) ? { python: pythonOf(args.python)! } : {}),
  };
}

/** --accel and friends; `fallback` is the default mode (build: auto; run and shell: none). */
export function accelOptions<T>(y: Argv<T>, fallback: AccelMode) {
  return y
    .option('accel', {
      choices: accelModes,
      default: fallback,
      describe: 'compilers: cross = a native cross gcc of the image\'s gcc version inside the chroot (make, sh, python stay emulated); full = cross, and the wheel front end and backend under a host Python of the image\'s exact version (verification stays emulated); distcc = cross plus compile jobs sent to --distcc-hosts; none = pure emulation; auto = cross when one can be had, else none',
    })
    .option('toolchain', {
      choices: toolchainChoices,
      default: 'auto' as ToolchainChoice,
      describe: 'where the native cross gcc comes from: host = the host\'s packages only; tree = a toolchain tree of the image\'s own release (made once with mmdebstrap, cached in CACHE/toolchains); auto = the host\'s, else a tree',
    })
    .option('toolchain-mirror', { type: 'string', describe: 'an apt archive URL for the toolchain tree, where the image\'s own sources do not serve the host\'s architecture (e.g. Ubuntu ports images)' })
    .option('accel-gcc', { type: 'string', describe: 'force the host cross gcc of this major version even if the image\'s gcc differs (the wheel is still verified against the image)' })
    .option('distcc-hosts', { type: 'string', array: true, describe: 'distccd servers for --accel distcc (DISTCC_HOSTS entries, e.g. 10.0.0.5/8)' })
    .option('ccache', { type: 'boolean', default: true, describe: 'use the host\'s ccache with --accel cross/distcc (--no-ccache to skip)' });
}

function distccHostsOf(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.flatMap((h) => String(h).split(/\s+/)).filter(Boolean) : undefined;
}

export interface AccelArgs {
  accel: AccelMode;
  'accel-gcc'?: string;
  'distcc-hosts'?: string[];
  ccache: boolean;
  toolchain?: ToolchainChoice;
  'toolchain-mirror'?: string;
}

/** The accel request; throws a UsageError (call it before opening anything) for a bad host list. */
export function accelFromArgs(args: AccelArgs): AccelRequest {
  checkDistccRequest(args.accel, distccHostsOf(args['distcc-hosts']));
  return {
    mode: args.accel,
    ...(args['accel-gcc'] !== undefined ? { gcc: String(args['accel-gcc']) } : {}),
    ...(args['distcc-hosts'] ? { distccHosts: distccHostsOf(args['distcc-hosts']) } : {}),
    ccache: args.ccache,
    ...(args.toolchain ? { toolchain: args.toolchain } : {}),
    ...(args['toolchain-mirror'] ? { toolchainMirror: checkMirror(args['toolchain-mirror']) } : {}),
  };
}

function checkMirror(url: string): string {
  if (!/^(https?|file):\/\/\S+$/.test(url)) throw new UsageError(`--toolchain-mirror ${url} is not an archive URL`, 'give the URL apt uses for it, e.g. http://HOST/debian');
  return url;
}
