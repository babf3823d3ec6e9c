// What an image is: partitions and roles, userland arch, OS, Python, glibc and the wheel tag a build
// gets. Strictly read-only: a read-only loop and ro,noload mounts (no ext4 journal replay).
import fs from 'node:fs';
import { type Arch, archTable } from '../core/arch.js';
import { pythonAbi, wheelTag } from '../wheel/index.js';
import type { AttachStrategy } from '../host/attach.js';
import type { Context } from '../core/context.js';
import { bootMountpoint } from './boot.js';
import { withSession } from './open.js';
import type { Session } from './session.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { TableType } from '../parse/partitions.js';

export interface ImageFacts {
  image: string;
  size: number;
  table: { type: TableType; id: string };
  partitions: {
    number: number;
    start: number;
    size: number;
    type: string;
    bootable: boolean;
    fstype: string;
    label?: string;
    uuid?: string;
    partuuid?: string;
    role?: 'root' | 'boot';
  }[];
  arch: Arch;
  machine: string;
  os: Record<string, string>;
  python?: { version: string; executable: string; abi: string; headers: boolean };
  glibc?: string;
  wheelTag?: string;
  bootMountpoint?: string;
  attach: AttachStrategy;
}

export function parseOsRelease(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const m = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (m) out[m[1]!] = m[2]!.replace(/^"(.*)"$/, '$1').replace(/^'(.*)'$/, '$1');
  }
  return out;
}

/** Pure: glibc's version from the bytes of libc.so.6. */
export function glibcVersion(bytes: Buffer): string | undefined {
  const text = bytes.toString('latin1');
  const release = /GNU C Library[^\n\0]*?release version (\d+\.\d+)/.exec(text);
  if (release) return release[1];
  const versions = [...text.matchAll(/GLIBC_(\d+)\.(\d+)/g)].map((m) => [Number(m[1]), Number(m[2])] as const);
  if (versions.length === 0) return undefined;
  versions.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  const top = versions.at(-1)!;
  return `${top[0]}.${top[1]}`;
}

/** Facts read from a mounted root (host path through the session namespace). */
export function readRootFacts(rootHost: string, arch: Arch): Pick<ImageFacts, 'os' | 'python' | 'glibc' | 'wheelTag'> {
  const read = (inner: string) => {
    const r = resolveInRoot(rootHost, inner);
    return r.type === 'file' ? fs.readFileSync(r.host) : undefined;
  };
  const os = parseOsRelease((read('/etc/os-release') ?? read('/usr/lib/os-release') ?? Buffer.alloc(0)).toString('utf8'));
  const facts: Pick<ImageFacts, 'os' | 'python' | 'glibc' | 'wheelTag'> = { os };
  const py = resolveInRoot(rootHost, '/usr/bin/python3');
  const m = /python(\d+\.\d+)m?$/.exec(py.inner);
  if (py.type === 'file' && m) {
    const version = m[1]!;
    facts.python = {
      version,
      executable: py.inner,
      abi: pythonAbi(version),
      headers: resolveInRoot(rootHost, `/usr/include/python${version}/Python.h`).type === 'file' || resolveInRoot(rootHost, `/usr/include/python${version}m/Python.h`).type === 'file',
    };
    facts.wheelTag = wheelTag(version, arch);
  }
  const triplet = archTable[arch].triplet;
  for (const candidate of [`/lib/${triplet}/libc.so.6`, `/usr/lib/${triplet}/libc.so.6`, '/lib/libc.so.6', '/usr/lib/libc.so.6']) {
    const bytes = read(candidate);
    if (bytes) {
      const v = glibcVersion(bytes);
      if (v) facts.glibc = v;
      break;
    }
  }
  return facts;
}

export function sessionFacts(s: Session): ImageFacts {
  const rootHost = s.rootHost;
  const bootPart = s.image.partitions.find((p) => p.fstype === 'vfat');
  return {
    image: s.image.path,
    size: s.image.size,
    table: { type: s.image.table.type, id: s.image.table.id },
    partitions: s.image.partitions.map((p) => ({
      number: p.number,
      start: p.start,
      size: p.size,
      type: p.type,
      bootable: p.bootable,
      fstype: p.fstype,
      ...(p.label ? { label: p.label } : {}),
      ...(p.uuid ? { uuid: p.uuid } : {}),
      ...(p.partuuid ? { partuuid: p.partuuid } : {}),
      ...(p.number === s.rootPartition.number ? { role: 'root' as const } : p === bootPart ? { role: 'boot' as const } : {}),
    })),
    arch: s.arch,
    machine: archTable[s.arch].wheelMachine,
    ...readRootFacts(rootHost, s.arch),
    ...(s.boot ? { bootMountpoint: s.boot.mountpoint } : {}),
    attach: s.strategy,
  };
}

export async function inspectImage(ctx: Context, image: string, o: { attach?: AttachStrategy | 'auto'; allowBlockDevice?: boolean } = {}): Promise<ImageFacts> {
  return withSession(ctx, { image, mode: 'inspect', verb: 'inspect', ...o }, async (session) => {
    const facts = sessionFacts(session);
    const fstab = resolveInRoot(session.rootHost, '/etc/fstab');
    const boot = session.image.partitions.find((p) => p.fstype === 'vfat');
    if (boot && fstab.type === 'file') facts.bootMountpoint = bootMountpoint(fs.readFileSync(fstab.host, 'utf8'), boot, session.image.table.id);
    return facts;
  });
}

export function formatFacts(f: ImageFacts): string {
  const gib = (n: number) => (n >= 1 << 30 ? `${(n / (1 << 30)).toFixed(2)} GiB` : `${(n / (1 << 20)).toFixed(0)} MiB`);
  const lines = [
    `image:      ${f.image} (${gib(f.size)}, ${f.table.type.toUpperCase()}${f.table.id ? ` ${f.table.id}` : ''})`,
    'partitions:',
    ...f.partitions.map(
      (p) =>
        `  p${p.number}  start ${String(p.start).padStart(11)}  size ${gib(p.size).padStart(10)}  type ${p.type.padEnd(4)}  ${p.fstype.padEnd(6)} ${(p.label ?? '').padEnd(10)} ${p.role ? `<- ${p.role}${p.role === 'boot' && f.bootMountpoint ? ` (${f.bootMountpoint})` : ''}` : ''}`.trimEnd(),
    ),
    `arch:       ${f.arch} (${f.machine})`,
    `os:         ${f.os.PRETTY_NAME ?? f.os.NAME ?? 'unknown'}`,
    `python:     ${f.python ? `${f.python.version} (${f.python.executable}${f.python.headers ? '' : ', no headers: install python3-dev in the image'})` : 'none'}`,
    `glibc:      ${f.glibc ?? 'unknown'}`,
    `wheel tag:  ${f.wheelTag ?? 'n/a (no python3)'}`,
  ];
  return lines.join('\n');
}

