// Host-state snapshots for integration tests: mounts, loop devices, partition nodes, dm maps,
// binfmt entries, chrooted processes and imgbuild's memory cgroups, compared before and after every test.
import fs from 'node:fs';
import { execa } from 'execa';

export interface HostSnapshot {
  mounts: string[];
  loops: string[];
  partitions: string[];
  dm: string[];
  binfmt: string[];
  chrooted: string[];
  journals: string[];
  cgroups: string[];
}

/** Every cgroup named imgbuild-* in the memory hierarchies (cgroup v1 memory, cgroup2). */
function imgbuildCgroups(): string[] {
  const roots = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [left, right] = l.split(' - ');
      const r = right!.split(' ');
      return { target: left!.split(' ')[4]!, fstype: r[0], superOptions: r[2] ?? '' };
    })
    .filter((m) => m.fstype === 'cgroup2' || (m.fstype === 'cgroup' && m.superOptions.split(',').includes('memory')))
    .map((m) => m.target);
  const found: string[] = [];
  const walk = (dir: string) => {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(dir, { withFileTypes: true });
    } catch {
      return; // removed while we looked
    }
    for (const e of entries.filter((x) => x.isDirectory())) {
      if (e.name.startsWith('imgbuild-')) found.push(`${dir}/${e.name}`);
      walk(`${dir}/${e.name}`);
    }
  };
  for (const r of roots) walk(r);
  return found.sort();
}

async function binfmtEntries(): Promise<string[]> {
  const script =
    'd=/proc/sys/fs/binfmt_misc; [ -e $d/register ] || mount -t binfmt_misc binfmt_misc $d || exit 0; for f in $d/*; do case $f in */register|*/status) ;; *) printf "%s %s\\n" "${f##*/}" "$(tr "\\n" " " < $f)";; esac; done';
  const r = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { reject: false });
  return r.stdout.split('\n').filter(Boolean).sort();
}

/**
 * The root of a process when it is not the host's (by device and inode, not by name: a process
 * that entered an image with pivot_root reads its root as "/"), else undefined; throws when gone.
 */
export function foreignRoot(pid: string | number): string | undefined {
  const root = fs.statSync(`/proc/${pid}/root`);
  const host = fs.statSync('/');
  if (root.dev === host.dev && root.ino === host.ino) return undefined;
  const name = fs.readlinkSync(`/proc/${pid}/root`);
  return name === '/' ? `(pivoted: dev ${root.dev} ino ${root.ino})` : name;
}

export async function snapshot(): Promise<HostSnapshot> {
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => {
      const [left, right] = l.split(' - ');
      const f = left!.split(' ');
      return `${f[4]} ${right!.split(' ').slice(0, 2).join(' ')}`;
    })
    .sort();
  const loops = (await execa('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-FILE,OFFSET'], { reject: false })).stdout.split('\n').filter(Boolean).sort();
  const partitions: string[] = [];
  for (const b of fs.readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    for (const p of fs.readdirSync(`/sys/block/${b}`).filter((n) => n.startsWith(`${b}p`))) partitions.push(p);
  }
  const dmr = await execa('dmsetup', ['ls'], { reject: false });
  const dm = dmr.exitCode === 0 ? dmr.stdout.split('\n').filter((l) => l && !/No devices found/.test(l)).sort() : [];
  const chrooted: string[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const root = foreignRoot(pid);
      if (root) chrooted.push(`${pid} ${root}`);
    } catch {
      // gone or kernel thread
    }
  }
  let journals: string[] = [];
  try {
    journals = fs.readdirSync('/run/imgbuild/sessions').sort();
  } catch {
    // none
  }
  return { mounts, loops, partitions: partitions.sort(), dm, binfmt: await binfmtEntries(), chrooted, journals, cgroups: imgbuildCgroups() };
}
