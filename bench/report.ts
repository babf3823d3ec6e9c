// Pure: the benchmark's results as one Markdown report (printed and written to bench/results).
import { formatRatio, formatSeconds, type Measured, median, medianOf, ratio } from './stats.js';

export const targets = {
  /** accel / native on compile-heavy workloads */
  accel: 1.3,
  /** accel full / native on small wheels (setup-bound: MarkupSafe) */
  small: 1.5,
  /** imgbuild run -- true, whole wall time, seconds */
  session: 0.3,
  /** a repeat of the same build answered from the wheel cache, seconds */
  cached: 2,
  /** warm-ccache rebuild / cold build */
  warm: 0.2,
} as const;

export interface BuildRow {
  id: string;
  title: string;
  compileHeavy: boolean;
  native: Measured;
  cross: Measured;
  emulated: Measured;
  /** Keyed by accel mode (cross, distcc). */
  accel: Record<string, Measured>;
}

export interface SessionResult {
  /** imgbuild run IMAGE [--accel none] -- true */
  imgbuild: Measured;
  /** The same with --accel cross (its extra binds), when available. */
  imgbuildAccel: Measured;
  /** The same with --accel full (the host Python's prefix and the build tools too), when available. */
  imgbuildFull?: Measured;
  /** The same mounts with plain commands in a shell (bench/raw-session.sh). */
  raw: Measured;
  /** node dist/imgbuild.mjs --version: the part of imgbuild's time that is Node starting. */
  node: Measured;
}

export interface WheelResult {
  project: string;
  mode: string;
  cold: Measured;
  warm: Measured;
  cached: Measured;
  notes: string[];
}

export interface BenchResults {
  date: string;
  host: string;
  image: string;
  commit: string;
  reps: number;
  sessionReps: number;
  jobs: number;
  accelModes: string[];
  builds: BuildRow[];
  session?: SessionResult;
  wheel?: WheelResult;
  trees?: TreesResult;
  notes: string[];
}

/** The first --accel full session in an empty cache (it makes the trees the image needs) and the next one. */
export interface TreesResult {
  first: Measured;
  again: Measured;
  trees: { name: string; bytes: number }[];
}

const verdict = (ok: boolean | undefined) => (ok === undefined ? 'n/a' : ok ? 'met' : '**missed**');

function cell(m: Measured | undefined): string {
  if (!m) return '–';
  if (m.kind === 'skipped') return 'skipped';
  if (m.kind === 'failed') return 'FAILED';
  return formatSeconds(median(m.seconds));
}

function table(header: string[], rows: string[][]): string {
  return [`| ${header.join(' | ')} |`, `|${header.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.join(' | ')} |`)].join('\n');
}

export function formatReport(r: BenchResults): string {
  const out: string[] = [];
  out.push(`# imgbuild benchmark`, '');
  out.push(`${r.date} · ${r.host} · image ${r.image} · imgbuild ${r.commit} · medians of ${r.reps} (sessions: ${r.sessionReps}) · make -j${r.jobs}`, '');

  if (r.builds.length > 0) {
    out.push('## Builds', '');
    out.push('Compile time only, timed inside the host or the chroot around the build command (no session set-up, no copy of the tree).', '');
    const modes = r.accelModes;
    // Judged by the default mode (cross; the first measured when it was not): distcc to a local
    // distccd is a reference, and the best of several noisy modes would flatter.
    const judged = modes.includes('cross') ? 'cross' : modes[0];
    // Small wheels (setup-bound, not compile-heavy) are judged by accel full, when measured.
    const small = modes.includes('full') ? 'full' : undefined;
    const targetTitle = `target: accel${judged ? ` ${judged}` : ''} <= ${targets.accel}x${small ? `; small wheels accel full <= ${targets.small}x` : ''}`;
    const header = ['workload', 'native', 'host cross', 'emulated', ...modes.map((m) => `accel ${m}`), 'emulated/native', ...modes.map((m) => `accel ${m}/native`), targetTitle];
    const rows = r.builds.map((b) => {
      const n = medianOf(b.native);
      const accelRatios = modes.map((m) => ratio(medianOf(b.accel[m]), n));
      const mine = judged === undefined ? undefined : accelRatios[modes.indexOf(judged)];
      const smallRatio = small === undefined ? undefined : accelRatios[modes.indexOf(small)];
      const target = b.compileHeavy
        ? verdict(mine === undefined ? undefined : mine <= targets.accel)
        : small
          ? verdict(smallRatio === undefined ? undefined : smallRatio <= targets.small)
          : 'n/a (not compile-bound)';
      return [b.title, cell(b.native), cell(b.cross), cell(b.emulated), ...modes.map((m) => cell(b.accel[m])), formatRatio(ratio(medianOf(b.emulated), n)), ...accelRatios.map(formatRatio), target];
    });
    out.push(table(header, rows), '');
    const failed = r.builds.flatMap((b) =>
      Object.entries({ native: b.native, 'host cross': b.cross, emulated: b.emulated, ...Object.fromEntries(modes.map((m) => [`accel ${m}`, b.accel[m]!])) })
        .filter(([, m]) => m && m.kind !== 'ok')
        .map(([mode, m]) => `- ${b.id} ${mode}: ${m.kind === 'ok' ? '' : `${m.kind}: ${m.reason}`}`),
    );
    if (failed.length > 0) out.push(...failed, '');
    // The host's cross gcc on its own is the floor for accel: it is not the x86 compiler.
    const floors = r.builds.flatMap((b) => {
      const n = medianOf(b.native);
      const c = medianOf(b.cross);
      const a = medianOf(b.accel.cross);
      if (n === undefined || c === undefined) return [];
      return [`${b.id}: the host cross gcc alone ${formatRatio(c / n)} native${a === undefined ? '' : `; accel cross ${formatRatio(a / c)} of the host cross gcc`}`];
    });
    if (floors.length > 0) out.push(`Generating aarch64 code costs more than x86 code on this host: ${floors.join('; ')}.`, '');
  }

  if (r.session) {
    const s = r.session;
    const img = medianOf(s.imgbuild);
    const raw = medianOf(s.raw);
    out.push('## Session set-up + tear-down', '');
    out.push('Wall time of a chroot session that runs `true`, as a whole (Node start, partition table, lock, namespace, mounts, binfmt, chroot, tear-down).', '');
    const rows = [
      ['`imgbuild run IMAGE -- true`', cell(s.imgbuild), formatRatio(ratio(img, raw)), `${verdict(img === undefined ? undefined : img <= targets.session)} (<= ${targets.session} s)`],
      ['`imgbuild run IMAGE --accel cross -- true`', cell(s.imgbuildAccel), formatRatio(ratio(medianOf(s.imgbuildAccel), raw)), ''],
      ...(s.imgbuildFull ? [['`imgbuild run IMAGE --accel full -- true`', cell(s.imgbuildFull), formatRatio(ratio(medianOf(s.imgbuildFull), raw)), '']] : []),
      ['the same mounts by hand (bench/raw-session.sh)', cell(s.raw), '1.00x', ''],
      ['of which Node starting imgbuild (`imgbuild --version`)', cell(s.node), '', ''],
    ];
    out.push(table(['session', 'median', 'vs by hand', 'target'], rows), '');
    if (img !== undefined && raw !== undefined) out.push(`imgbuild's overhead over the same mounts by hand: ${formatSeconds(img - raw)}.`, '');
  }

  if (r.wheel) {
    const w = r.wheel;
    const cold = medianOf(w.cold);
    const warm = medianOf(w.warm);
    const cached = medianOf(w.cached);
    out.push(`## Wheel builds through imgbuild (${w.project}, --accel ${w.mode})`, '');
    out.push('Wall time of `imgbuild IMAGE --target local:DIR`, everything included (session, build, verification).', '');
    const rows = [
      ['cold build (new source, empty ccache for it)', cell(w.cold), '1.00x', ''],
      ['rebuild with a warm ccache (wheel cache bypassed)', cell(w.warm), formatRatio(ratio(warm, cold)), `${verdict(warm === undefined || cold === undefined ? undefined : warm / cold <= targets.warm)} (<= ${targets.warm}x cold)`],
      ['repeat of the same build (wheel cache)', cell(w.cached), formatRatio(ratio(cached, cold)), `${verdict(cached === undefined ? undefined : cached <= targets.cached)} (<= ${targets.cached} s)`],
    ];
    out.push(table(['build', 'median', 'vs cold', 'target'], rows), '');
    for (const [name, m] of [['cold', w.cold], ['warm', w.warm], ['cached', w.cached]] as const) if (m.kind !== 'ok') out.push(`- ${name}: ${m.kind}: ${m.reason}`);
    for (const n of w.notes) out.push(`- ${n}`);
    out.push('');
  }

  if (r.trees) {
    const { first, again, trees } = r.trees;
    const a = medianOf(first);
    const b = medianOf(again);
    out.push('## Toolchain and Python trees', '');
    out.push(
      trees.length === 0
        ? `None needed: the host has the image's gcc and Python. The first \`imgbuild run --accel full -- true\` in an empty cache: ${cell(first)}; the next: ${cell(again)}.`
        : `Made by the first \`imgbuild run --accel full -- true\` in an empty cache: ${trees.map((t) => `${t.name} (${(t.bytes / 2 ** 20).toFixed(0)} MiB)`).join(', ')}. That session: ${cell(first)}; the next: ${cell(again)}; making them took about ${a !== undefined && b !== undefined ? formatSeconds(a - b) : 'n/a'}.`,
      '',
    );
  }
  if (r.notes.length > 0) out.push('## Notes', '', ...r.notes.map((n) => `- ${n}`), '');
  return out.join('\n');
}
