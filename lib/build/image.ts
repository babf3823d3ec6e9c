// Read the image before anything is changed: the facts the plan needs, and whether the
// --with-wheel wheels fit it.
import { decideWithToolchain } from '../accel/index.js';
import type { Arch } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import { sessionFacts, withSession } from '../session/index.js';
import { verifyWheel } from '../wheel/index.js';
import type { ImageInfo, SuppliedWheel } from './run.js';
import type { BuildRequest } from './types.js';
import { sonamesOf } from './verify.js';

/** Facts the plan needs, from a read-only session (read-only loop, ro,noload mounts: nothing changes). */
export async function readImage(ctx: Context, req: BuildRequest, supplied: SuppliedWheel[] = []): Promise<ImageInfo> {
  return withSession(ctx, { image: req.image, mode: 'inspect', verb: 'build (read image)', attach: req.attach, allowBlockDevice: req.allowBlockDevice }, async (s) => {
    const facts = sessionFacts(s, req.python);
    if (!facts.python) {
      throw new PreconditionError(`${req.image} has no python3 (/usr/bin/python3)`, 'wheels are built with and for the image\'s own Python: install python3 in the image first (imgbuild shell IMAGE --rw), or name another with --python PATH (imgbuild inspect lists them)');
    }
    const root = s.rootHost;
    const exists = (inner: string) => resolveInRoot(root, inner).type === 'file';
    const v = facts.python.version;
    const py = facts.python;
    const systemDirs = ['/usr/lib/python3/dist-packages', `/usr/local/lib/python${v}/dist-packages`, `/usr/lib/python${v}/site-packages`, `/usr/local/lib/python${v}/site-packages`];
    // A venv sees its own site-packages, and the system's only when made with --system-site-packages.
    const envDirs = py.prefix ? [`${py.prefix}/lib/python${v}/site-packages`] : [];
    const pipDirs = py.kind === 'system' || py.systemSitePackages ? [...envDirs, ...systemDirs] : envDirs;
    checkSupplied(supplied, root, { arch: s.arch, machine: s.machine, python: v, ...(facts.glibc ? { glibc: facts.glibc } : {}) });
    // An explicit --accel that cannot work fails here, before anything is changed.
    // A toolchain tree the build will use is made here, before anything is built.
    const accel = resolveInRoot(root, '/usr/lib/gcc').type === 'dir' ? await decideWithToolchain(ctx, req.accel ?? { mode: 'auto' }, s.arch, root, facts.python) : undefined;
    return {
      accel,
      facts,
      python: v,
      hasPip: pipDirs.some((d) => exists(`${d}/pip/__init__.py`)),
      hasCc: exists('/usr/bin/gcc') || exists('/usr/bin/cc'),
      hasCxx: exists('/usr/bin/g++') || exists('/usr/bin/c++'),
    };
  });
}

// Checked like built wheels, before anything is built on them: what targets build against a
// wheel that does not fit would not load on the board either.
function checkSupplied(supplied: SuppliedWheel[], root: string, image: { arch: Arch; machine: string; python: string; glibc?: string }): void {
  for (const w of supplied) {
    const provided = supplied.filter((o) => o !== w).flatMap((o) => sonamesOf(o.path));
    const report = verifyWheel(w.path, { rootHost: root, ...image, provided });
    if (report.problems.length > 0) {
      throw new PreconditionError(
        `--with-wheel ${w.path} does not fit the image:\n${report.problems.map((p) => `  - ${p}`).join('\n')}`,
        'give a wheel built for this image (imgbuild builds one with --target), or install what it needs into the image first',
      );
    }
  }
}
