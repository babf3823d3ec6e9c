// binfmt_misc: reuse an enabled entry with the F flag for the image's arch, or register our own
// uniquely named one (F flag, static qemu) and remove exactly that one afterwards.
import fs from 'node:fs';
import path from 'node:path';
import { type Arch, archTable, binfmtMagic } from '../core/arch.js';
import { PreconditionError } from '../core/errors.js';
import type { HostChange } from '../undo/journal.js';
import type { Transaction } from '../undo/transaction.js';

export const hostBinfmtDir = '/proc/sys/fs/binfmt_misc';

export interface BinfmtEntry {
  name: string;
  enabled: boolean;
  interpreter: string;
  flags: string;
  offset: number;
  magic: Buffer;
  mask: Buffer;
}

/** Pure: the text of /proc/sys/fs/binfmt_misc/NAME. Returns undefined for extension (E) entries. */
export function parseBinfmtEntry(name: string, text: string): BinfmtEntry | undefined {
  const lines = text.split('\n');
  const field = (key: string) => lines.find((l) => l.startsWith(`${key} `) || l.startsWith(`${key}:`))?.replace(/^[a-z]+:? ?/, '').trim();
  const magic = field('magic');
  if (magic === undefined) return undefined;
  const mask = field('mask');
  return {
    name,
    enabled: lines[0]?.trim() === 'enabled',
    interpreter: field('interpreter') ?? '',
    flags: field('flags') ?? '',
    offset: Number(field('offset') ?? 0),
    magic: Buffer.from(magic, 'hex'),
    mask: mask ? Buffer.from(mask, 'hex') : Buffer.alloc(magic.length / 2, 0xff),
  };
}

/** Would the kernel hand an executable with this header to this entry? */
export function entryMatches(entry: BinfmtEntry, header: Buffer): boolean {
  if (entry.offset + entry.magic.length > header.length) return false;
  for (let i = 0; i < entry.magic.length; i++) {
    const m = entry.mask[i] ?? 0xff;
    if (((header[entry.offset + i] ?? 0) & m) !== ((entry.magic[i] ?? 0) & m)) return false;
  }
  return true;
}

export function readEntries(dir: string): BinfmtEntry[] {
  const entries: BinfmtEntry[] = [];
  for (const name of fs.readdirSync(dir)) {
    if (name === 'register' || name === 'status') continue;
    try {
      const e = parseBinfmtEntry(name, fs.readFileSync(path.join(dir, name), 'utf8'));
      if (e) entries.push(e);
    } catch {
      // removed meanwhile
    }
  }
  return entries;
}

// The name registerEmulation gives a session's own entry: imgbuild-QEMUARCH-SESSION6.
const sessionEntry = /^imgbuild-[a-z0-9_]+-[0-9a-z]{6}$/;

/** The entry the kernel would use for this arch, if it is enabled and has the F flag (works in a chroot). */
export function findUsableEntry(dir: string, arch: Arch): { entry?: BinfmtEntry; reason?: string } {
  if (fs.readFileSync(path.join(dir, 'status'), 'utf8').trim() !== 'enabled') return { reason: 'binfmt_misc is disabled (status)' };
  const { magic } = binfmtMagic(archTable[arch]);
  // Another imgbuild's entry is not reused: that run removes it when it ends, which would take
  // emulation away from this one mid-build (seen: a sample bootstrap beside a build).
  const matching = readEntries(dir).filter((e) => e.enabled && entryMatches(e, magic) && !sessionEntry.test(e.name));
  const fixed = matching.find((e) => e.flags.includes('F') && fs.existsSync(e.interpreter));
  if (fixed) return { entry: fixed };
  if (matching.length > 0) return { reason: `entry ${matching[0]!.name} has no F flag, so its interpreter is not found inside a chroot` };
  return { reason: `no binfmt_misc entry for ${arch}` };
}

export function qemuInterpreter(arch: Arch): string {
  const name = `qemu-${archTable[arch].qemu}-static`;
  for (const dir of ['/usr/bin', '/usr/local/bin', '/usr/libexec/qemu-binfmt']) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return p;
  }
  throw new PreconditionError(
    `no static qemu-user for ${arch} (${name}) on this host`,
    'install it: apt-get install qemu-user-static (or run scripts/setup-host.sh)',
  );
}

export function registrationLine(name: string, arch: Arch, interpreter: string): string {
  const { magic, mask } = binfmtMagic(archTable[arch]);
  const hex = (b: Buffer) => [...b].map((x) => `\\x${x.toString(16).padStart(2, '0')}`).join('');
  return `:${name}:M::${hex(magic)}:${hex(mask)}:${interpreter}:F`;
}

/**
 * Make `arch` executable through binfmt_misc. `dir` is a binfmt_misc mount (the host's, or one
 * in a private namespace: the entries are global either way). Returns the entry used.
 */
export async function enableEmulation(tx: Transaction, dir: string, arch: Arch, sessionId: string): Promise<string> {
  const usable = findUsableEntry(dir, arch);
  if (usable.entry) {
    tx.emit({ kind: 'info', message: `binfmt: reusing host entry ${usable.entry.name} (${usable.entry.interpreter}, flags ${usable.entry.flags})` });
    return usable.entry.name;
  }
  const interpreter = qemuInterpreter(arch);
  const name = `imgbuild-${archTable[arch].qemu}-${sessionId.slice(-6)}`;
  const change: HostChange = { kind: 'binfmt', name, interpreter, magic: binfmtMagic(archTable[arch]).magic.toString('hex') };
  await tx.change(`remove binfmt entry ${name}`, change, async () => {
    fs.writeFileSync(path.join(dir, 'register'), registrationLine(name, arch, interpreter));
    return change;
  });
  tx.emit({ kind: 'info', message: `binfmt: registered ${name} (${interpreter}, F) because ${usable.reason}` });
  return name;
}

/** Undo of a binfmt change: remove the entry only if it is still the one we registered. */
export function removeEntry(dir: string, change: Extract<HostChange, { kind: 'binfmt' }>): void {
  const file = path.join(dir, change.name);
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return; // already gone
  }
  const entry = parseBinfmtEntry(change.name, text);
  if (!entry || entry.interpreter !== change.interpreter || entry.magic.toString('hex') !== change.magic) {
    throw new Error(`binfmt entry ${change.name} is not the one imgbuild registered; left alone`);
  }
  fs.writeFileSync(file, '-1');
}
