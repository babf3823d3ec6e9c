// A distccd of the benchmark's own on 127.0.0.1 (a free port), for --accel distcc: started for
// the run and stopped by the process id it wrote, after checking that process is still it.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Bench } from './measure.js';

export interface Distccd {
  /** A DISTCC_HOSTS entry: 127.0.0.1:PORT/JOBS */
  host: string;
  /** Compile jobs it ran so far (from its log). */
  jobsDone: () => number;
  stop: () => Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const port = (srv.address() as net.AddressInfo).port;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function isOurs(pid: number, port: number): boolean {
  try {
    const argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return path.basename(argv[0] ?? '') === 'distccd' && argv.includes(String(port));
  } catch {
    return false;
  }
}

export async function startDistccd(b: Bench, jobs: number): Promise<Distccd> {
  const dir = path.join(b.work, 'distccd');
  fs.mkdirSync(dir);
  // distccd drops to nobody before it writes its pid and log files: the directory is nobody's,
  // and the scratch directory above it lets nobody through (but not read).
  const id = async (flag: string) => Number((await b.run('id', [flag, 'nobody'], { quiet: true })).stdout.trim());
  fs.chownSync(dir, await id('-u'), await id('-g'));
  fs.chmodSync(b.work, 0o711);
  const port = await freePort();
  const pidFile = path.join(dir, 'pid');
  await b.run('distccd', ['--daemon', '--allow', '127.0.0.1', '--listen', '127.0.0.1', '--port', String(port), '--jobs', String(jobs), '--pid-file', pidFile, '--log-file', path.join(dir, 'log'), '--log-level', 'info', '--user', 'nobody']);
  let pid = 0;
  for (let i = 0; i < 50 && !pid; i++) {
    const text = fs.existsSync(pidFile) ? fs.readFileSync(pidFile, 'utf8').trim() : '';
    if (/^\d+$/.test(text) && isOurs(Number(text), port)) pid = Number(text);
    else await sleep(100);
  }
  if (!pid) throw new Error(`distccd did not start on 127.0.0.1:${port} (log: ${path.join(dir, 'log')})`);
  const stop = async () => {
    if (!isOurs(pid, port)) return;
    process.kill(pid, 'SIGTERM');
    for (let i = 0; i < 50 && isOurs(pid, port); i++) await sleep(100);
    if (isOurs(pid, port)) process.kill(pid, 'SIGKILL');
  };
  const log = path.join(dir, 'log');
  const jobsDone = () => (fs.existsSync(log) ? (fs.readFileSync(log, 'utf8').match(/COMPILE_OK/g) ?? []).length : 0);
  return { host: `127.0.0.1:${port}/${jobs}`, jobsDone, stop };
}
