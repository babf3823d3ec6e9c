// distcc as the launcher of the accelerated compiler (--accel distcc): the host list checked
// before anything is opened, each server probed with a real compile before the build starts,
// and the environment distcc runs with inside the chroot. distcc and distccd do the work.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Arch, archTable } from '../core/arch.js';
import type { Context } from '../core/context.js';
import { readElfHeader } from '../parse/elf.js';
import { PreconditionError, UsageError } from '../core/errors.js';

/** One DISTCC_HOSTS entry (distcc(1), HOST SPECIFICATIONS), as far as imgbuild supports it. */
export type DistccHost =
  | { kind: 'tcp'; spec: string; host: string; port: number; limit?: number; options: string[] }
  | { kind: 'local'; spec: string }
  | { kind: 'global'; spec: string };

const example = 'e.g. --distcc-hosts 10.0.0.5 10.0.0.6:3632/8 buildbox,lzo';

/** Parse one host entry; throws a UsageError for what distcc would reject or imgbuild cannot serve. */
export function parseDistccHost(spec: string): DistccHost {
  if (spec === '--randomize' || /^--localslots(_cpp)?=\d+$/.test(spec)) return { kind: 'global', spec };
  if (/^localhost(\/\d+)?$/.test(spec)) return { kind: 'local', spec };
  if (spec.includes('@')) throw new UsageError(`distcc host ${spec}: ssh mode is not supported`, `distcc would run ssh inside the emulated chroot; run distccd --daemon on the server and give it as HOST[:PORT] (${example})`);
  if (spec === '+zeroconf') throw new UsageError('distcc host +zeroconf is not supported', `there is no avahi inside the chroot; list the servers (${example})`);
  // HOSTID[:PORT][/LIMIT][,OPTION...] or the old order HOSTID[/LIMIT][:PORT][,OPTION...]
  const m = /^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9.-]*)(?::(\d+))?(?:\/(\d+))?(?::(\d+))?((?:,[^,]+)*)$/.exec(spec);
  if (!m || (m[2] && m[4])) throw new UsageError(`distcc host "${spec}" is not HOST[:PORT][/LIMIT][,lzo]`, example);
  const port = Number(m[2] ?? m[4] ?? 3632);
  if (port < 1 || port > 65535) throw new UsageError(`distcc host ${spec}: port ${port} is out of range`, example);
  const options = (m[5] ?? '').split(',').filter(Boolean);
  for (const o of options) {
    if (o === 'cpp') throw new UsageError(`distcc host ${spec}: ",cpp" (pump mode) is not supported`, 'pump mode needs distcc-pump\'s include server around the build; drop ",cpp": distcc preprocesses with the accelerated compiler');
    if (o !== 'lzo' && !/^auth(=.+)?$/.test(o)) throw new UsageError(`distcc host ${spec}: unknown option ",${o}"`, 'distcc knows ,lzo ,cpp and ,auth');
  }
  const limit = m[3] === undefined ? undefined : Number(m[3]);
  if (limit === 0) throw new UsageError(`distcc host ${spec}: a limit of 0 jobs`, example);
  return { kind: 'tcp', spec, host: m[1]!, port, ...(limit === undefined ? {} : { limit }), options };
}

/**
 * The usage checks the CLI runs before it opens anything: --accel distcc needs servers, and
 * servers need --accel distcc (they would be ignored silently otherwise).
 */
export function checkDistccRequest(mode: string, hosts: readonly string[] | undefined): DistccHost[] {
  const list = hosts ?? [];
  if (mode !== 'distcc') {
    if (list.length > 0) throw new UsageError(`--distcc-hosts is only used with --accel distcc (this is --accel ${mode})`, 'add --accel distcc, or drop --distcc-hosts');
    return [];
  }
  const parsed = list.map(parseDistccHost);
  if (!parsed.some((h) => h.kind === 'tcp')) throw new UsageError('--accel distcc needs at least one distccd server in --distcc-hosts', example);
  return parsed;
}

/** Where distcc keeps its lock and state files inside the chroot (the session's /run tmpfs). */
export function distccEnv(hosts: readonly string[], dir: string): Record<string, string> {
  return {
    DISTCC_HOSTS: hosts.join(' '),
    DISTCC_DIR: dir,
    // A server that cannot take a job fails the compile with distcc's own message, instead of a
    // silent local compile (and warnings on stderr that trip configure checks).
    DISTCC_FALLBACK: '0',
    // A real compile error is reported once, not compiled again locally.
    DISTCC_SKIP_LOCAL_RETRY: '1',
    // The compiler names imgbuild passes are already fully qualified (TRIPLE-gcc-N).
    DISTCC_NO_CROSS_REWRITE: '1',
  };
}

const probes = {
  c: { file: 'probe.c', text: 'int imgbuild_probe(int x) { return x + 1; }\n' },
  cxx: { file: 'probe.cc', text: 'template <class T> T twice(T x) { return x + x; }\nint imgbuild_probe(int x) { return twice(x); }\n' },
} as const;

/**
 * Compile a small C (and C++) file on each server through the host's distcc with fallbacks off,
 * so a server that is down, refuses this client or lacks the compiler is named before the build
 * starts. No headers: the host's cross gcc preprocesses without the cross libc's headers.
 */
export async function probeDistccHosts(ctx: Context, hosts: readonly DistccHost[], arch: Arch, compilers: { c: string; cxx?: string }): Promise<void> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'imgbuild-distcc-'));
  try {
    // Hosts in parallel (an unreachable one costs distcc's 4 s connect timeout), each with its
    // own state directory so one host's backoff does not hide another's error.
    const perHost = hosts.flatMap((h, i) => (h.kind === 'tcp' ? [probeHost(ctx, h, path.join(dir, String(i)), arch, compilers)] : []));
    const failures = (await Promise.all(perHost)).flat();
    if (failures.length > 0) {
      throw new PreconditionError(
        `--accel distcc: ${failures.length === 1 ? 'a server cannot' : 'servers cannot'} compile for the image:\n  ${failures.join('\n  ')}`,
        `on each server: distccd --daemon --allow <this host's address>, and the same cross compiler with its /usr/lib/distcc link (apt-get install ${[compilers.c, compilers.cxx].filter((c) => c !== undefined).map(debianPackage).join(' ')}; update-distcc-symlinks)`,
      );
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

async function probeHost(ctx: Context, h: Extract<DistccHost, { kind: 'tcp' }>, dir: string, arch: Arch, compilers: { c: string; cxx?: string }): Promise<string[]> {
  fs.mkdirSync(path.join(dir, 'state'), { recursive: true });
  for (const [lang, compiler] of [['c', compilers.c], ['cxx', compilers.cxx]] as const) {
    if (!compiler) continue;
    fs.writeFileSync(path.join(dir, probes[lang].file), probes[lang].text);
    const obj = path.join(dir, `${lang}.o`);
    const r = await ctx.run('distcc', [compiler, '-c', probes[lang].file, '-o', obj], {
      cwd: dir,
      allowFailure: true,
      // DISTCC_BACKOFF_PERIOD stays at its default: 0 makes distcc retry a dead host forever.
      env: { ...distccEnv([h.spec], path.join(dir, 'state')), DISTCC_IO_TIMEOUT: '60', DISTCC_VERBOSE: undefined },
    });
    const header = fs.existsSync(obj) ? readElfHeader(fs.readFileSync(obj)) : undefined;
    // The first failure says it all (the next compile would only meet the host's backoff).
    if (r.exitCode !== 0) return [`${h.spec}: ${compiler} failed (exit ${r.exitCode}): ${r.all.trim().split('\n').slice(-2).join(' | ')}`];
    if (header?.machine !== archTable[arch].elfMachine) return [`${h.spec}: ${compiler} did not produce a ${arch} object`];
  }
  return [];
}

// The Debian package of a cross driver: aarch64-linux-gnu-g++-12 -> g++-12-aarch64-linux-gnu.
function debianPackage(driver: string): string {
  const m = /^(.+)-(gcc|g\+\+)-(\d+)$/.exec(driver);
  return m ? `${m[2]}-${m[3]}-${m[1]}` : driver;
}
