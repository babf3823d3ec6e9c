// SOURCE_DATE_EPOCH for a build, from its source (reproducible-builds.org's convention): a git
// commit's time, else the newest file in a source tree or archive. Build backends stamp the
// wheel's entries with it, and the host-side rewrite sets every entry's time to it, so two builds
// of the same source give the same bytes.
import fs from 'node:fs';
import type { Context } from '../core/context.js';
import { readDirectory } from '../parse/zip.js';

/** The earliest time a ZIP entry can carry (1980-01-01 UTC). */
export const zipEpoch = 315532800;

const clamp = (t: number) => Math.max(zipEpoch, Math.floor(t));

/** The newest modification time (seconds) of the regular files below `dir`, skipping .git and the top-level `skip` names. */
export function newestInTree(dir: string, skip: readonly string[] = []): number | undefined {
  let newest: number | undefined;
  // Names as Buffers: a file name that is not UTF-8 must still be found.
  const walk = (d: Buffer, top: boolean) => {
    for (const name of fs.readdirSync(d, { encoding: 'buffer' })) {
      const text = name.toString('latin1');
      if (text === '.git' || (top && skip.includes(text))) continue;
      const p = Buffer.concat([d, Buffer.from('/'), name]);
      const st = fs.lstatSync(p);
      if (st.isDirectory()) walk(p, false);
      else if (st.isFile()) newest = Math.max(newest ?? 0, st.mtimeMs / 1000);
    }
  };
  walk(Buffer.from(dir), true);
  return newest;
}

/** Pure: the newest time in `tar -tv --full-time` output read with TZ=UTC ("2023-01-18 12:34:56"). */
export function newestInTarListing(text: string): number | undefined {
  let newest: number | undefined;
  for (const m of text.matchAll(/ (\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) /g)) {
    const t = Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6])) / 1000;
    newest = Math.max(newest ?? 0, t);
  }
  return newest;
}

/** The newest entry time of a ZIP archive (its MS-DOS times, read as UTC). */
export function newestInZip(file: string): number | undefined {
  const { entries, central } = readDirectory(file);
  let newest: number | undefined;
  let p = 0;
  for (let i = 0; i < entries.length; i++) {
    const time = central.readUInt16LE(p + 12);
    const date = central.readUInt16LE(p + 14);
    const t = Date.UTC(1980 + (date >> 9), ((date >> 5) & 15) - 1, date & 31, time >> 11, (time >> 5) & 63, (time & 31) * 2) / 1000;
    newest = Math.max(newest ?? 0, t);
    p += 46 + central.readUInt16LE(p + 28) + central.readUInt16LE(p + 30) + central.readUInt16LE(p + 32);
  }
  return newest;
}

/** SOURCE_DATE_EPOCH for a source: `commit` time from its git directory, else its newest file (a tree's, an archive's entries', or the file's own). */
export async function sourceEpoch(ctx: Context, o: { path: string; gitDir?: string; commit?: string; skip?: readonly string[] }): Promise<number> {
  if (o.gitDir && o.commit) {
    const r = await ctx.run('git', ['-C', o.gitDir, 'show', '-s', '--format=%ct', o.commit], { allowFailure: true, quiet: true });
    if (r.exitCode === 0 && /^\d+$/.test(r.stdout.trim())) return clamp(Number(r.stdout.trim()));
  }
  const st = fs.statSync(o.path);
  if (st.isDirectory()) return clamp(newestInTree(o.path, o.skip) ?? st.mtimeMs / 1000);
  if (/\.(zip|whl)$/i.test(o.path)) {
    try {
      return clamp(newestInZip(o.path) ?? st.mtimeMs / 1000);
    } catch {
      return clamp(st.mtimeMs / 1000);
    }
  }
  const r = await ctx.run('tar', ['-tv', '--full-time', '-f', o.path], { allowFailure: true, quiet: true, env: { TZ: 'UTC', LC_ALL: 'C' } });
  return clamp((r.exitCode === 0 ? newestInTarListing(r.stdout) : undefined) ?? st.mtimeMs / 1000);
}
