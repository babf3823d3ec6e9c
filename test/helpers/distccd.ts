// A distccd on 127.0.0.1 for one test: its own process group (so stopping it stops its preforked
// workers too), its log kept for assertions, run as `nobody`, and nothing left running afterwards.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { execa, execaSync } from 'execa';

export interface Distccd {
  port: number;
  /** DISTCC_HOSTS entry for it. */
  spec: string;
  log(): string;
  /** `dcc_job_summary` lines of its log: one per job it took. */
  jobs(): string[];
  /** SIGTERM to its process group, then wait until no process of the group is left. */
  stop(): Promise<void>;
}

/** Why a distccd test cannot run here, or undefined. */
export function distccMissing(): string | undefined {
  for (const tool of ['distcc', 'distccd']) {
    if (execaSync('sh', ['-c', `command -v ${tool}`], { reject: false }).exitCode !== 0) return `the host has no ${tool} (apt-get install distcc)`;
  }
  if (execaSync('id', ['-u', 'nobody'], { reject: false }).exitCode !== 0) return 'the host has no user nobody to run distccd as';
  return undefined;
}

/** A TCP port on 127.0.0.1 that nothing listens on (at the time of the call). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Process ids whose process group is `pgid`. */
export function groupMembers(pgid: number): number[] {
  const found: number[] = [];
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so count from the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[2]) === pgid) found.push(Number(pid));
    } catch {
      // gone
    }
  }
  return found;
}

export async function startDistccd(dir: string): Promise<Distccd> {
  const uid = Number(execaSync('id', ['-u', 'nobody']).stdout);
  fs.mkdirSync(dir, { recursive: true });
  fs.chownSync(dir, uid, -1); // distccd writes its log and pid file after dropping to nobody
  const logFile = path.join(dir, 'distccd.log');
  const port = await freePort();
  const child = execa(
    'distccd',
    ['--daemon', '--no-detach', '--user', 'nobody', '--allow', '127.0.0.1', '--listen', '127.0.0.1', '--port', String(port), '--jobs', '2', '--log-file', logFile, '--log-level', 'info', '--pid-file', path.join(dir, 'distccd.pid')],
    { detached: true, reject: false, stdin: 'ignore', all: true },
  );
  const pgid = child.pid!;
  const log = () => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  const stop = async () => {
    try {
      process.kill(-pgid, 'SIGTERM');
    } catch {
      // already gone
    }
    await child;
    for (let i = 0; i < 50 && groupMembers(pgid).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
    for (const pid of groupMembers(pgid)) process.kill(pid, 'SIGKILL');
  };
  for (let i = 0; i < 100 && !/daemon started/.test(log()); i++) {
    if (child.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  if (!/daemon started/.test(log())) {
    await stop();
    throw new Error(`distccd did not start: ${log()}${(await child).all ?? ''}`);
  }
  return { port, spec: `127.0.0.1:${port}`, log, jobs: () => log().split('\n').filter((l) => l.includes('dcc_job_summary')), stop };
}
