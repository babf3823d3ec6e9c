// A mistyped verb (imgbuild inpsect x.img) is answered in one line with the nearest verb, instead
// of being taken for an image path by the default verb and answered with the whole help.
import fs from 'node:fs';

/** Levenshtein distance, small strings only. */
export function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}

/** The verb a first argument was meant to be, when it is none, no file, and within two edits of one. */
export function mistypedVerb(first: string | undefined, verbs: readonly string[]): string | undefined {
  if (!first || first.startsWith('-') || verbs.includes(first) || /[./]/.test(first) || fs.existsSync(first)) return undefined;
  const [best] = verbs.map((v) => ({ v, d: distance(first, v) })).sort((x, y) => x.d - y.d);
  return best && best.d <= 2 ? best.v : undefined;
}

const imageVerbs = ['build', 'inspect', 'run', 'shell', 'mount', 'grow'];

/**
 * The image given after "--" (imgbuild inspect -- -x.img: the way to name a file that starts with
 * "-"), which yargs keeps out of the positionals: put before the "--" (as ./-x.img when it starts
 * with "-", the same file). For run and shell, whose "--" starts the command, only a name starting
 * with "-" that is an existing file.
 */
export function protectDashImage(argv: readonly string[], verbs: readonly string[]): string[] {
  const dd = argv.indexOf('--');
  const first = argv[dd + 1];
  if (dd < 0 || first === undefined) return [...argv];
  // The verb may follow global options (imgbuild --cache-dir DIR run ...).
  const verb = argv.slice(0, dd).find((a) => verbs.includes(a)) ?? 'build';
  if (!imageVerbs.includes(verb)) return [...argv];
  if ((verb === 'run' || verb === 'shell') && !(first.startsWith('-') && fs.existsSync(first))) return [...argv];
  const rest = argv.slice(dd + 2);
  return [...argv.slice(0, dd), first.startsWith('-') ? `./${first}` : first, ...(rest.length ? ['--', ...rest] : [])];
}
