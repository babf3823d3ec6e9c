// What an image is: partitions and roles, userland arch, OS, Python, glibc and the wheel tag a build
// gets. Strictly read-only: a read-only loop and ro,noload mounts (no ext4 journal replay).
import fs from 'node:fs';
import { type Arch, archTable } from '../core/arch.js';
import { wheelTag } from '../wheel/index.js';
import type { AttachStrategy } from '../host/attach.js';
import type { Context } from '../core/context.js';
import { bootMountpoint } from './boot.js';
import { withSession } from './open.js';
import type { Session } from './session.js';
import { resolveInRoot } from '../host/safe-path.js';
import type { TableType } from '../parse/partitions.js';
import { chooseInterpreter, describeInterpreter, findInterpreters, type Interpreter } from './pythons.js';

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
  /** The Python a build uses: the system's /usr/bin/python3, or the one --python names. */
  python?: Interpreter;
  /** Every interpreter found in the image (inspect lists them). */
  interpreters?: Interpreter[];
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

/** Facts read from a mounted root (host path through the session namespace); `python`: --python's path. */
export function readRootFacts(rootHost: string, arch: Arch, python?: string, image = rootHost, machine = archTable[arch].wheelMachine): Pick<ImageFacts, 'os' | 'python' | 'glibc' | 'wheelTag'> {
  const read = (inner: string) => {
    const r = resolveInRoot(rootHost, inner);
    return r.type === 'file' ? fs.readFileSync(r.host) : undefined;
  };
  const os = parseOsRelease((read('/etc/os-release') ?? read('/usr/lib/os-release') ?? Buffer.alloc(0)).toString('utf8'));
  const facts: Pick<ImageFacts, 'os' | 'python' | 'glibc' | 'wheelTag'> = { os };
  const py = python ? chooseInterpreter(rootHost, image, python) : describeInterpreter(rootHost, '/usr/bin/python3');
  if (py) {
    facts.python = py;
    facts.wheelTag = wheelTag(py.version, arch, machine);
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

export function sessionFacts(s: Session, python?: string): ImageFacts {
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
    machine: s.machine,
    ...readRootFacts(rootHost, s.arch, python, s.image.path, s.machine),
    ...(s.boot ? { bootMountpoint: s.boot.mountpoint } : {}),
    attach: s.strategy,
  };
}

export async function inspectImage(ctx: Context, image: string, o: { attach?: AttachStrategy | 'auto'; allowBlockDevice?: boolean; python?: string } = {}): Promise<ImageFacts> {
  const { python, ...open } = o;
  return withSession(ctx, { image, mode: 'inspect', verb: 'inspect', ...open }, async (session) => {
    const facts = sessionFacts(session, python);
    facts.interpreters = findInterpreters(session.rootHost);
    const fstab = resolveInRoot(session.rootHost, '/etc/fstab');
    const boot = session.image.partitions.find((p) => p.fstype === 'vfat');
    if (boot && fstab.type === 'file') facts.bootMountpoint = bootMountpoint(fs.readFileSync(fstab.host, 'utf8'), boot, session.image.table.id);
    return facts;
  });
}

function describePython(p: Interpreter): string {
  const where = p.executable === p.path ? p.path : `${p.path} -> ${p.executable}`;
  const kind = p.kind === 'venv' ? `venv${p.systemSitePackages ? ' with system site-packages' : ''}` : p.kind;
  return `${p.version} (${where}, ${kind}${p.headers ? '' : ', no headers: install python3-dev in the image'})`;
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
    `arch:       ${f.arch} (${f.machine}${f.machine === 'armv6l' && f.arch === 'armhf' ? ': an ARMv6 userland, as Raspberry Pi OS for the Pi Zero and 1' : ''})`,
    `os:         ${f.os.PRETTY_NAME ?? f.os.NAME ?? 'unknown'}`,
    `python:     ${f.python ? describePython(f.python) : 'none'}`,
    `glibc:      ${f.glibc ?? 'unknown'}`,
    `wheel tag:  ${f.wheelTag ?? 'n/a (no python3)'}`,
  ];
  const others = (f.interpreters ?? []).filter((i) => i.path !== f.python?.path);
  if (others.length) lines.push('other pythons (--python PATH builds for one):', ...others.map((i) => `  ${i.path}: ${describePython(i)}, tag ${wheelTag(i.version, f.arch, f.machine)}`));
  return lines.join('\n');
}

