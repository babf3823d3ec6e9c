// Identity of files and processes: what we created is found again by device and inode (or by
// pid and start time), never by a name that someone else's object could also carry.
import fs from 'node:fs';

export interface FileId {
  dev: number;
  ino: number;
}

export function fileId(path: string): FileId {
  const st = fs.statSync(path);
  return { dev: st.dev, ino: st.ino };
}

export function lfileId(path: string): FileId | undefined {
  try {
    const st = fs.lstatSync(path);
    return { dev: st.dev, ino: st.ino };
  } catch {
    return undefined;
  }
}

export function sameFile(a: FileId | undefined, b: FileId | undefined): boolean {
  return !!a && !!b && a.dev === b.dev && a.ino === b.ino;
}

export interface ProcessId {
  pid: number;
  /** Field 22 of /proc/PID/stat: start time in clock ticks since boot. */
  start: string;
}

export function processStart(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[19];
  } catch {
    return undefined;
  }
}

export function selfProcessId(): ProcessId {
  return { pid: process.pid, start: processStart(process.pid) ?? '' };
}

/** Same pid, same start time, and not a zombie waiting to be reaped. */
export function processAlive(id: ProcessId): boolean {
  try {
    const stat = fs.readFileSync(`/proc/${id.pid}/stat`, 'utf8');
    const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return rest[0] !== 'Z' && rest[0] !== 'X' && rest[19] === id.start;
  } catch {
    return false;
  }
}
