// The files bound into the chroot for the session: the host's resolv.conf and a policy-rc.d
// that keeps services from starting. Bound over the image's own, never written through them.
import fs from 'node:fs';
import path from 'node:path';
import { type Emit, stage } from '../core/events.js';
import { checkpoint, type FaultStep } from '../core/fault.js';
import { resolveInRoot } from '../host/safe-path.js';
import { createInImage, type MountCtx, mountIn, underTmpfs } from './mounts.js';

/** Provide /etc/resolv.conf and /usr/sbin/policy-rc.d in the chroot, their sources kept in `workdir`. */
export async function provideChrootFiles(emit: Emit, m: MountCtx, workdir: string): Promise<void> {
  await stage(emit, 'provide resolv.conf', () => bindFileOver(m, '/etc/resolv.conf', hostResolvConf(), path.join(workdir, 'resolv.conf'), 0o644, 'resolv'));
  await bindFileOver(m, '/usr/sbin/policy-rc.d', '#!/bin/sh\n# imgbuild: no services start in a build chroot\nexit 101\n', path.join(workdir, 'policy-rc.d'), 0o755, 'policy-rc.d');
}

/** The host's resolver configuration, skipping a systemd-resolved stub that means nothing in a chroot. */
export function hostResolvConf(): string {
  const main = safeRead('/etc/resolv.conf');
  const stubOnly = /nameserver\s+127\.0\.0\.53/.test(main) && !/nameserver\s+(?!127\.0\.0\.53)\S+/.test(main);
  if (stubOnly) {
    const upstream = safeRead('/run/systemd/resolve/resolv.conf');
    if (upstream.trim()) return upstream;
  }
  return main;
}

function safeRead(p: string): string {
  try {
    return fs.readFileSync(p, 'utf8');
  } catch {
    return '';
  }
}

// Bound over, never written through: the image's file (regular, symlink or missing) is as before
// afterwards, and kill -9 cannot leave host content in the image.
async function bindFileOver(m: MountCtx, inner: string, content: string, source: string, mode: number, step: FaultStep): Promise<void> {
  checkpoint(step);
  fs.writeFileSync(source, content, { mode });
  fs.chmodSync(source, mode);
  let r = resolveInRoot(m.rootHost, inner);
  if (r.type === 'missing') {
    const parent = resolveInRoot(m.rootHost, path.posix.dirname(r.inner));
    if (parent.type === 'missing' && underTmpfs(parent.inner)) fs.mkdirSync(parent.host, { recursive: true });
    else if (parent.type !== 'dir') {
      m.tx.emit({ kind: 'warn', message: `${inner} not provided: ${parent.inner} in the image is not a directory` });
      return;
    }
    await createInImage(m, r.inner, 'file');
    r = resolveInRoot(m.rootHost, inner);
  }
  if (r.type !== 'file') {
    m.tx.emit({ kind: 'warn', message: `${inner} not provided: it is not a regular file in the image (${r.type})` });
    return;
  }
  await mountIn(m.tx, m.ns, inner, ['--bind', '-o', 'ro', source], path.join(m.root, r.inner));
}
