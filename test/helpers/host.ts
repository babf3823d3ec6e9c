// Host-state snapshots for integration tests: mounts, loop devices, partition nodes, dm maps,
// binfmt entries and chrooted processes, compared before and after every test.
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
}

async function binfmtEntries(): Promise<string[]> {
  const script =
    'd=/proc/sys/fs/binfmt_misc; [ -e $d/register ] || mount -t binfmt_misc binfmt_misc $d || exit 0; for f in $d/*; do case $f in */register|*/status) ;; *) printf "%s %s\\n" "${f##*/}" "$(tr "\\n" " " < $f)";; esac; done';
  const r = await execa('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', script], { reject: false });
  return r.stdout.split('\n').filter(Boolean).sort();
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
      const root = fs.readlinkSync(`/proc/${pid}/root`);
      if (root !== '/') chrooted.push(`${pid} ${root}`);
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
  return { mounts, loops, partitions: partitions.sort(), dm, binfmt: await binfmtEntries(), chrooted, journals };
}
