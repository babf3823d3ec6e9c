// /proc/PID/mountinfo, parsed. Paths are compared on component boundaries (/a is not /ab).
import fs from 'node:fs';

export interface MountEntry {
  id: number;
  parent: number;
  /** major:minor of the mounted filesystem. */
  dev: string;
  root: string;
  target: string;
  options: string;
  fstype: string;
  source: string;
  superOptions: string;
}

// mountinfo escapes space, tab, newline and backslash as octal.
function unescape(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Pure: the text of a mountinfo file. */
export function parseMountinfo(text: string): MountEntry[] {
  const entries: MountEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const f = left.split(' ');
    const r = right.split(' ');
    entries.push({
      id: Number(f[0]),
      parent: Number(f[1]),
      dev: f[2] ?? '',
      root: unescape(f[3] ?? ''),
      target: unescape(f[4] ?? ''),
      options: f[5] ?? '',
      fstype: r[0] ?? '',
      source: unescape(r[1] ?? ''),
      superOptions: r[2] ?? '',
    });
  }
  return entries;
}

export function readMountinfo(pid: number | 'self' = 'self'): MountEntry[] {
  return parseMountinfo(fs.readFileSync(`/proc/${pid}/mountinfo`, 'utf8'));
}

export function isAtOrBelow(target: string, dir: string): boolean {
  const d = dir.endsWith('/') && dir !== '/' ? dir.slice(0, -1) : dir;
  return target === d || target.startsWith(d === '/' ? '/' : `${d}/`);
}

export function mountsAtOrBelow(entries: MountEntry[], dir: string): MountEntry[] {
  return entries.filter((e) => isAtOrBelow(e.target, dir));
}
