// Small static programs imgbuild runs on the host side of a session (the chroot entry, the accel
// shim): built from their C source with the host's cc, once per source version, into the cache.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { packageFile } from '../core/resources.js';

/**
 * The static program (or with `shared`, the shared object) built from `source` (a file of the package), cached as
 * CACHE/accel/NAME-SHA12; `what` names it in the error when the host's cc cannot build it.
 */
export async function ensureStaticProgram(ctx: Context, o: { source: string; name: string; what: string; otherwise: string; shared?: boolean }): Promise<string> {
  const file = packageFile(o.source);
  const hash = crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 12);
  const dir = path.join(ctx.cacheDir, 'accel');
  const out = path.join(dir, `${o.name}-${hash}`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  // A shared object (a preload) instead of a static program when asked.
  const r = await ctx.run('cc', [...(o.shared ? ['-shared', '-fPIC'] : ['-static']), '-Os', '-s', '-o', tmp, file], { allowFailure: true });
  if (r.exitCode !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new PreconditionError(`cannot build ${o.what} with the host's cc: ${r.all.trim().split('\n').slice(-3).join(' ')}`, `install gcc and libc6-dev on the host (scripts/setup-host.sh does)${o.otherwise}`);
  }
  fs.renameSync(tmp, out);
  return out;
}
