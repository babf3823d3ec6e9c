// What a wheel gives to `import`: its distribution's top_level.txt when it has one, else its
// top-level packages and modules as they lie in the archive. The import check imports each.
import { readEntry, readZip } from '../parse/zip.js';

const identifier = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** The top-level modules a wheel installs, sorted; [] when it installs none (data only). */
export function wheelModules(file: string): string[] {
  const entries = readZip(file);
  const present = modulesOf(entries.map((e) => e.name));
  const topLevel = entries.find((e) => /^[^/]+\.dist-info\/top_level\.txt$/.test(e.name));
  if (!topLevel) return present;
  // setuptools lists an extension under ext_package by its bare name (xxhash's "_xxhash"):
  // only what the wheel really has at its top is imported.
  const listed = readEntry(file, topLevel).toString('utf8').split(/\r?\n/).map((l) => l.trim().split('/')[0]!).filter((l) => present.includes(l));
  return listed.length > 0 ? [...new Set(listed)].sort() : present;
}

/** Pure: the top-level importable names among a wheel's member paths. */
export function modulesOf(members: readonly string[]): string[] {
  const found = new Set<string>();
  for (const m of members) {
    const [first, ...rest] = m.split('/');
    if (!first || /\.(dist-info|data)$/.test(first)) continue;
    // A package is a directory of modules; a namespace package counts when it holds one.
    const name = rest.length > 0 ? (rest.some((r) => /\.(py|so|pyd)$/.test(r)) ? first : undefined) : /^([^.]+)\.(py|so|pyd|[^/]*\.so)$/.exec(first)?.[1];
    if (name && identifier.test(name)) found.add(name);
  }
  return [...found].sort();
}
