// A directory held by its descriptor, for writing into a place someone else may own: --out under
// sudo belongs to the user, who can rename it or swap what is in it for a symlink at any moment.
// Names under a held directory resolve in the directory that was opened, as openat(2) would,
// through the kernel's /proc/self/fd/N link; new files are made under a fresh name with O_EXCL
// (which never follows a link) and renamed into place, so a link planted at the final name is
// replaced, never written through; ownership is given with lchown. Paths shown to people name the
// directory as it was given (shownPath), never its descriptor.
import fs from 'node:fs';
import path from 'node:path';

const shownAs = new Map<string, string>();

export interface Owner {
  uid: number;
  gid: number;
}

export class HeldDir {
  /** The directory through its descriptor: use it for every read and write under it. */
  readonly path: string;

  private constructor(
    readonly fd: number,
    /** The directory as given, for messages. */
    readonly shown: string,
  ) {
    this.path = `/proc/self/fd/${fd}`;
    shownAs.set(this.path, shown);
  }

  /** Open `dir` (made by the caller). With `follow`, a symlink given as `dir` itself is taken (the user named it). */
  static open(dir: string, o: { follow?: boolean; shown?: string } = {}): HeldDir {
    const fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | (o.follow ? 0 : fs.constants.O_NOFOLLOW));
    return new HeldDir(fd, o.shown ?? dir);
  }

  /** A subdirectory, made when missing; a symlink (or anything but a directory) there is refused. */
  sub(name: string, mode = 0o755): HeldDir {
    const p = this.at(name);
    try {
      fs.mkdirSync(p, mode);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    try {
      return HeldDir.open(p, { shown: path.join(this.shown, name) });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ELOOP' || code === 'ENOTDIR') throw new Error(`${path.join(this.shown, name)} is not a directory (a symlink?): remove it and run again`);
      throw error;
    }
  }

  /** A name directly in this directory (one component: no slash, not . or ..). */
  at(name: string): string {
    if (!name || name.includes('/') || name === '.' || name === '..') throw new Error(`not a file name: ${JSON.stringify(name)}`);
    return `${this.path}/${name}`;
  }

  /** Put a new file at `name`: written under a fresh name, given to `owner`, renamed over whatever was there. */
  put(name: string, content: { data: string | Buffer } | { copyOf: string }, owner?: Owner): string {
    const tmp = this.at(`.${name}.imgbuild-${process.pid}`);
    fs.rmSync(tmp, { force: true });
    if ('copyOf' in content) fs.copyFileSync(content.copyOf, tmp, fs.constants.COPYFILE_EXCL);
    else fs.writeFileSync(tmp, content.data, { flag: 'wx', mode: 0o644 });
    try {
      if (owner) giveAway(tmp, owner);
      fs.renameSync(tmp, this.at(name));
    } catch (error) {
      fs.rmSync(tmp, { force: true });
      throw error;
    }
    return this.at(name);
  }

  /** Read `name` if it is a regular file (a symlink is not followed). */
  read(name: string): string | undefined {
    let fd: number;
    try {
      fd = fs.openSync(this.at(name), fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW | fs.constants.O_NONBLOCK);
    } catch {
      return undefined;
    }
    try {
      return fs.fstatSync(fd).isFile() ? fs.readFileSync(fd, 'utf8') : undefined;
    } finally {
      fs.closeSync(fd);
    }
  }

  /** Give the directory itself to `owner` (root keeps it while others must not change what is in it); false where the filesystem does not let us (vfat, a root-squashing NFS). */
  own(owner: Owner): boolean {
    try {
      fs.fchownSync(this.fd, owner.uid, owner.gid);
      return true;
    } catch {
      return false;
    }
  }

  /** The name stays known for messages made after (an error thrown through the close); the next directory on this descriptor number takes it over. */
  close(): void {
    fs.closeSync(this.fd);
  }
}

/** lchown, for files we just made: a link swapped in meanwhile is what changes owner, never its target. */
export function giveAway(file: string, owner: Owner): void {
  if (owner.uid === 0 && owner.gid === 0) return;
  try {
    fs.lchownSync(file, owner.uid, owner.gid);
  } catch {
    // not ours to give
  }
}

/** `text` with every held directory's descriptor path replaced by the directory as given. */
export function shownPath(text: string): string {
  if (shownAs.size === 0 || !text.includes('/proc/self/fd/')) return text;
  return text.replace(/\/proc\/self\/fd\/\d+/g, (m) => shownAs.get(m) ?? m);
}
