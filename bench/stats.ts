// Pure helpers for the benchmark: medians, ratios, the timing line a build script prints.

/** A measurement: times of each repetition, or why there are none. */
export type Measured = { kind: 'ok'; seconds: number[] } | { kind: 'skipped'; reason: string } | { kind: 'failed'; reason: string };

export function median(values: readonly number[]): number {
  if (values.length === 0) throw new Error('median of nothing');
  const s = [...values].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function medianOf(m: Measured | undefined): number | undefined {
  return m?.kind === 'ok' && m.seconds.length > 0 ? median(m.seconds) : undefined;
}

export function ratio(a: number | undefined, b: number | undefined): number | undefined {
  return a === undefined || b === undefined || b <= 0 ? undefined : a / b;
}

/** Add one repetition to a measurement (a failure or skip is kept: one bad repetition spoils the row). */
export function addRep(m: Measured | undefined, seconds: number): Measured {
  if (m && m.kind !== 'ok') return m;
  return { kind: 'ok', seconds: [...(m?.seconds ?? []), seconds] };
}

export const timingMark = '@imgbuild-bench';

/**
 * The shell that times a build from inside wherever it runs (host or chroot): only the build
 * command is timed, so session set-up, tear-down and the copy of the tree are not in it.
 */
export function timedScript(dir: string, command: string, log: string, exports: Record<string, string>): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  const env = Object.entries(exports).map(([k, v]) => `export ${k}=${q(v)}`);
  return [
    ...env,
    `cd ${q(dir)} || exit 97`,
    't0=$(date +%s.%N)',
    `status=0; sh -c ${q(command)} >${q(log)} 2>&1 </dev/null || status=$?`,
    't1=$(date +%s.%N)',
    `echo "${timingMark} $status $t0 $t1"`,
  ].join('\n');
}

/** Pure: the exit status and seconds of the timed command, from the script's output. */
export function parseTiming(output: string): { status: number; seconds: number } | undefined {
  const m = new RegExp(`^${timingMark} (\\d+) (\\d+(?:\\.\\d+)?) (\\d+(?:\\.\\d+)?)$`, 'm').exec(output);
  if (!m) return undefined;
  return { status: Number(m[1]), seconds: Number(m[3]) - Number(m[2]) };
}

export function formatSeconds(s: number | undefined): string {
  if (s === undefined) return '–';
  if (s < 1) return `${s.toFixed(3)} s`;
  if (s < 10) return `${s.toFixed(2)} s`;
  return `${s.toFixed(1)} s`;
}

export function formatRatio(r: number | undefined): string {
  if (r === undefined) return '–';
  return r < 10 ? `${r.toFixed(2)}x` : `${r.toFixed(1)}x`;
}
