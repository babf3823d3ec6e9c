// The program every command enters the image through (lib/host/enter.c): the box.
import type { Context } from '../core/context.js';
import { ensureStaticProgram } from './static-program.js';

/** The entry program, compiled once per source version into the cache (needs the host's cc and libc.a). */
export function ensureEnter(ctx: Context): Promise<string> {
  return ensureStaticProgram(ctx, { source: 'lib/host/enter.c', name: 'enter', what: 'the chroot entry (lib/host/enter.c)', otherwise: '' });
}
