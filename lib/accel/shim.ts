// The shim that goes over the image's compiler files: a small static program built from shim.c
// with the host's cc, once per source version, into the cache.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { packageFile } from '../core/resources.js';

const shimSource = packageFile('lib/accel/shim.c');

/** The static shim, compiled once per source version into the cache (needs the host's cc and libc.a). */
export async function ensureShim(ctx: Context): Promise<string> {
  const src = fs.readFileSync(shimSource);
  const hash = crypto.createHash('sha256').update(src).digest('hex').slice(0, 12);
  const dir = path.join(ctx.cacheDir, 'accel');
  const out = path.join(dir, `shim-${hash}`);
  if (fs.existsSync(out)) return out;
  fs.mkdirSync(dir, { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const r = await ctx.run('cc', ['-static', '-Os', '-s', '-o', tmp, shimSource], { allowFailure: true });
  if (r.exitCode !== 0) {
    fs.rmSync(tmp, { force: true });
    throw new PreconditionError(`cannot build the accel shim with the host's cc: ${r.all.trim().split('\n').slice(-3).join(' ')}`, 'install gcc and libc6-dev on the host (scripts/setup-host.sh does), or use --accel none');
  }
  fs.renameSync(tmp, out);
  return out;
}
