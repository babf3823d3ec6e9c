import type { Argv } from 'yargs';
import { type AttachStrategy, attachStrategies, type SessionOptions } from '../../lib/index.js';

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
    .option('workspace', { type: 'string', describe: 'host directory bound at /workspace in the chroot (nosuid,nodev)' })
    .option('rw', { type: 'boolean', default: false, describe: 'write into the image (default: the image is read-only under a throwaway layer)' });
}

export interface SessionArgs {
  image: string;
  attach: AttachStrategy | 'auto';
  workspace?: string;
  rw: boolean;
  'allow-block-device': boolean;
}

/** The session the run and shell verbs open: a throwaway layer over the image unless --rw. */
export function sessionFromArgs(args: SessionArgs, verb: string, hostPts: boolean): SessionOptions {
  return {
    image: args.image,
    mode: args.rw ? 'rw' : 'overlay',
    verb,
    attach: args.attach,
    workspace: args.workspace,
    allowBlockDevice: args['allow-block-device'],
    hostPts,
  };
}
