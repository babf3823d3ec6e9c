// Write-ahead journal of host changes the kernel would not undo by itself when imgbuild dies.
// Each change is written as an intent before it is made, completed with what was made, and
// marked undone afterwards; `imgbuild recover` replays what a dead session left.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { type FileId, type ProcessId, processAlive, selfProcessId } from '../core/identity.js';
import { makeDirs } from '../core/dirs.js';

export type HostChange =
  /** A loop device over the image (or one of its partitions). */
  | { kind: 'loop'; image: FileId; imagePath: string; offset: number; sizelimit: number; device?: string; diskseq?: string }
  /** Partition nodes added to a loop device with partx. */
  | { kind: 'partitions'; device: string; diskseq: string }
  /** device-mapper maps made by kpartx. */
  | { kind: 'dm-maps'; image: FileId; imagePath: string; loop?: string; diskseq?: string; maps?: { name: string; uuid: string }[] }
  /** A binfmt_misc entry we registered. */
  | { kind: 'binfmt'; name: string; interpreter: string; magic: string }
  /** A file or directory created inside the image (only in --rw sessions). */
  | { kind: 'created'; path: string; type: 'file' | 'dir'; id?: FileId; image?: FileId; imagePath?: string; offset?: number; sizelimit?: number; fstype?: string }
  /** A mount in the host's namespace (kept sessions only). */
  | { kind: 'mount'; target: string; device?: string; mountId?: number }
  /** A directory imgbuild made on the host for the session. */
  | { kind: 'workdir'; path: string; id?: FileId }
  /** A memory cgroup (v1 or v2) imgbuild made for the session's commands. */
  | { kind: 'cgroup'; path: string; id?: FileId };

export type JournalRecord =
  | { t: 'begin'; session: string; owner: ProcessId; verb: string; image?: FileId; imagePath?: string; time: string }
  | { t: 'intent'; seq: number; change: HostChange }
  | { t: 'made'; seq: number; change: HostChange }
  | { t: 'undone'; seq: number }
  /** The session's namespace holder: it ends by itself once its owner is gone, and recover waits for that. */
  | { t: 'holder'; process: ProcessId }
  | { t: 'keep'; target: string }
  | { t: 'release' };

export class Journal {
  private seq = 0;
  readonly file: string;

  private constructor(
    readonly id: string,
    readonly dir: string,
  ) {
    this.file = path.join(dir, `${id}.journal`);
  }

  static create(stateDir: string, verb: string, image?: { id: FileId; path: string }): Journal {
    const dir = path.join(stateDir, 'sessions');
    makeDirs(dir, 0o700);
    const id = `${new Date().toISOString().replace(/[-:]/g, '').slice(0, 15)}-${crypto.randomBytes(3).toString('hex')}`;
    const journal = new Journal(id, dir);
    journal.append({
      t: 'begin',
      session: id,
      owner: selfProcessId(),
      verb,
      ...(image ? { image: image.id, imagePath: image.path } : {}),
      time: new Date().toISOString(),
    });
    return journal;
  }

  static open(file: string): Journal {
    const id = path.basename(file, '.journal');
    const journal = new Journal(id, path.dirname(file));
    journal.seq = Math.max(0, ...readJournal(file).records.map((r) => ('seq' in r ? r.seq : 0)));
    return journal;
  }

  intent(change: HostChange): number {
    const seq = ++this.seq;
    this.append({ t: 'intent', seq, change });
    return seq;
  }

  made(seq: number, change: HostChange): void {
    this.append({ t: 'made', seq, change });
  }

  undone(seq: number): void {
    this.append({ t: 'undone', seq });
  }

  holder(process: ProcessId): void {
    this.append({ t: 'holder', process });
  }

  keep(target: string): void {
    this.append({ t: 'keep', target });
  }

  /** Everything is undone: the journal is no longer needed. */
  close(): void {
    fs.rmSync(this.file, { force: true });
  }

  private append(record: JournalRecord): void {
    const fd = fs.openSync(this.file, fs.constants.O_WRONLY | fs.constants.O_APPEND | fs.constants.O_CREAT | fs.constants.O_NOFOLLOW, 0o600);
    try {
      fs.writeSync(fd, `${JSON.stringify(record)}\n`);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  }
}

export interface PendingChange {
  seq: number;
  change: HostChange;
  /** false when only the intent was written: the action may or may not have happened. */
  made: boolean;
}

export interface JournalState {
  file: string;
  begin?: Extract<JournalRecord, { t: 'begin' }>;
  records: JournalRecord[];
  /** Changes not undone yet, newest first (the order to undo them). */
  pending: PendingChange[];
  kept?: string;
  /** The namespace holder the session started, if it recorded one. */
  holder?: ProcessId;
}

export function readJournal(file: string): JournalState {
  const text = fs.readFileSync(file, 'utf8');
  return parseJournal(file, text);
}

/** Pure: a journal's text to its state. A torn last line (crash mid-write) is ignored. */
export function parseJournal(file: string, text: string): JournalState {
  const records: JournalRecord[] = [];
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    try {
      records.push(JSON.parse(line) as JournalRecord);
    } catch {
      // torn write at the end of a crashed session
    }
  }
  const changes = new Map<number, PendingChange>();
  let begin: JournalState['begin'];
  let kept: string | undefined;
  let holder: ProcessId | undefined;
  for (const r of records) {
    if (r.t === 'begin') begin = r;
    else if (r.t === 'intent') changes.set(r.seq, { seq: r.seq, change: r.change, made: false });
    else if (r.t === 'made') changes.set(r.seq, { seq: r.seq, change: r.change, made: true });
    else if (r.t === 'undone') changes.delete(r.seq);
    else if (r.t === 'holder') holder = r.process;
    else if (r.t === 'keep') kept = r.target;
    else if (r.t === 'release') kept = undefined;
  }
  const pending = [...changes.values()].sort((a, b) => b.seq - a.seq);
  return { file, records, pending, ...(begin ? { begin } : {}), ...(kept ? { kept } : {}), ...(holder ? { holder } : {}) };
}

export function listJournals(stateDir: string): JournalState[] {
  const dir = path.join(stateDir, 'sessions');
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => n.endsWith('.journal'))
    .sort()
    .map((n) => readJournal(path.join(dir, n)));
}

/** A session is live while its owner process (same pid and start time) runs. */
export function sessionAlive(state: JournalState): boolean {
  return !!state.begin && processAlive(state.begin.owner);
}
