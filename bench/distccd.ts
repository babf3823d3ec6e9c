// A distccd of the benchmark's own on 127.0.0.1 (a free port), for --accel distcc. It runs in the
// foreground (--no-detach), so its process id is the one we started, and is stopped by that id.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { silent } from '../lib/core/events.js';
import { start } from '../lib/core/runner.js';
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

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(port, '127.0.0.1');
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startDistccd(b: Bench, jobs: number): Promise<Distccd> {
  const dir = path.join(b.work, 'distccd');
  fs.mkdirSync(dir);
  // distccd drops to nobody before it opens its log: the directory is nobody's, and the scratch
  // directory above it lets nobody through (but not read).
  const id = async (flag: string) => Number((await b.run('id', [flag, 'nobody'], { quiet: true })).stdout.trim());
  fs.chownSync(dir, await id('-u'), await id('-g'));
  fs.chmodSync(b.work, 0o711);
  const port = await freePort();
  const log = path.join(dir, 'log');
  const d = start(silent, 'distccd', ['--daemon', '--no-detach', '--allow', '127.0.0.1', '--listen', '127.0.0.1', '--port', String(port), '--jobs', String(jobs), '--log-file', log, '--log-level', 'info', '--user', 'nobody']);
  let exited = false;
  void d.exited.then(() => (exited = true));
  const stop = async () => {
    if (exited) return;
    process.kill(d.pid, 'SIGTERM');
    for (let i = 0; i < 50 && !exited; i++) await sleep(100);
    if (!exited) process.kill(d.pid, 'SIGKILL');
    await d.exited;
  };
  for (let i = 0; i < 50 && !exited && !(await accepts(port)); i++) await sleep(100);
  if (exited || !(await accepts(port))) {
    await stop();
    throw new Error(`distccd did not start on 127.0.0.1:${port}: ${(await d.exited).all.trim() || `see ${log}`}`);
  }
  const jobsDone = () => (fs.existsSync(log) ? (fs.readFileSync(log, 'utf8').match(/COMPILE_OK/g) ?? []).length : 0);
  return { host: `127.0.0.1:${port}/${jobs}`, jobsDone, stop };
}
