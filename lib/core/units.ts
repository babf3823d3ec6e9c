// Byte sizes: the units and the two ways imgbuild writes a size for people (every formatter lives here).

export const MiB = 1024 * 1024;
export const GiB = 1024 * MiB;

/** A size rounded for messages and plans: "1.5 GiB", "300 MiB". */
export function human(n: number): string {
  return n >= GiB ? `${(n / GiB).toFixed(1)} GiB` : `${Math.round(n / MiB)} MiB`;
}

/** A size to two decimals in the largest fitting unit, for image layouts: "7.48 GiB", "512 bytes". */
export function formatBytes(n: number): string {
  for (const [unit, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]] as const) {
    if (n >= size) return `${Number((n / size).toFixed(2))} ${unit}`;
  }
  return `${n} bytes`;
}

/** "90s", "45m", "2h", "1.5h" or plain seconds, in milliseconds; anything else throws, naming the value. */
export function parseDuration(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([smh]?)$/.exec(text.trim());
  const n = m ? Number(m[1]) * { '': 1, s: 1, m: 60, h: 3600 }[m[2] as '' | 's' | 'm' | 'h'] * 1000 : NaN;
  if (!Number.isFinite(n) || n < 1000) throw new Error(`${text} is not a duration of at least a second: give one like 90s, 45m or 2h`);
  return Math.round(n);
}
