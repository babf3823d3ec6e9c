// What accel puts in the chroot, as it is gathered: the files under /run/imgbuild-accel (written
// at once through the namespace), the binds to mount in order, and the shim's map lines.
import fs from 'node:fs';
import path from 'node:path';
import { PreconditionError } from '../core/errors.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { Bind, Session } from '../session/index.js';

/** Root of everything accel puts in the chroot (inside the session's /run tmpfs). */
export const accelRoot = '/run/imgbuild-accel';

/** The accel directory of a session, the binds that go over the image, and the shim's map. */
export class AccelTree {
  readonly binds: Bind[] = [];
  /** The shim's map: one `IMAGE-PATH<tab>HOST-PROGRAM<tab>FLAGS` line a wrapped file. */
  readonly map: string[] = [];
  /** The chroot root, as a host path. */
  readonly rootHost: string;
  private readonly accelHost: string;
  private readonly wrapped = new Set<string>();

  /** Make the session's accel directory with a copy of the shim; refuses when it is there already. */
  constructor(
    private readonly s: Session,
    shim: string,
  ) {
    this.rootHost = s.rootHost;
    this.accelHost = path.join(s.file('/run'), 'imgbuild-accel');
    if (fs.existsSync(this.accelHost)) throw new PreconditionError('compiler acceleration is already enabled in this session');
    fs.mkdirSync(this.accelHost, { mode: 0o755 });
    for (const d of ['tools', 'lib', 'lib2', 'gcc-cross', 'bin']) fs.mkdirSync(this.inAccel(d));
    fs.copyFileSync(shim, this.inAccel('shim'));
    fs.chmodSync(this.inAccel('shim'), 0o755);
  }

  /** Host path of a file in the accel directory. */
  inAccel(p: string): string {
    return path.join(this.accelHost, p);
  }

  /** A path inside the chroot, as the session's namespace sees it. */
  nsRoot(inner: string): string {
    return path.join(this.s.root, inner);
  }

  /** Bind a host program at /run/imgbuild-accel/tools/NAME (once); returns that path. */
  tool(hostFile: string, name = path.basename(hostFile)): string {
    const inner = `${accelRoot}/tools/${name}`;
    if (!this.binds.some((b) => b.inner === inner)) {
      fs.closeSync(fs.openSync(this.inAccel(`tools/${name}`), 'w', 0o755));
      this.binds.push({ source: hostFile, inner });
    }
    return inner;
  }

  /** Put the shim over an image file (by its resolved path, as /proc/self/exe will show it), mapped to a host program. */
  over(inner: string, hostProgram: string, flags = '-'): void {
    const r = resolveInRoot(this.rootHost, inner);
    if (r.type !== 'file' || this.wrapped.has(r.inner)) return;
    this.wrapped.add(r.inner);
    this.binds.push({ source: this.nsRoot(`${accelRoot}/shim`), inner: r.inner });
    this.map.push(`${r.inner}\t${hostProgram}\t${flags}`);
  }

  /** Whether the shim goes over this (resolved) image path. */
  wraps(inner: string): boolean {
    return this.wrapped.has(inner);
  }
}
