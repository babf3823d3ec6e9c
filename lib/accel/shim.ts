// The shim that goes over the image's compiler files: a small static program built from shim.c
// with the host's cc, once per source version, into the cache.
import type { Context } from '../core/context.js';
import { ensureStaticProgram } from '../host/static-program.js';

/** The static shim, compiled once per source version into the cache (needs the host's cc and libc.a). */
export function ensureShim(ctx: Context): Promise<string> {
  return ensureStaticProgram(ctx, { source: 'lib/accel/shim.c', name: 'shim', what: 'the accel shim', otherwise: ', or use --accel none' });
}

/** The uname preload of the build tools --accel full runs natively (uname.c), built once per source version. */
export function ensureUnamePreload(ctx: Context): Promise<string> {
  return ensureStaticProgram(ctx, { source: 'lib/accel/uname.c', name: 'uname.so', what: 'the accel uname preload', otherwise: ', or use --accel cross', shared: true });
}
