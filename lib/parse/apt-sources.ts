// apt source files, parsed: the binary (deb) archives they name, from deb822 `.sources` stanzas
// and one-line `.list` entries alike.

export interface AptEntry {
  uri: string;
  suites: string[];
  components: string[];
  /** The key file it names (a path as the system that reads the file sees it). */
  signedBy?: string;
}

/** Pure: the binary (deb) entries of a sources file's text; `.sources` is deb822, anything else one-line. */
export function parseAptSources(text: string, deb822: boolean): AptEntry[] {
  const out: AptEntry[] = [];
  if (deb822) {
    for (const st of text.split(/\n\s*\n/)) {
      const field = (k: string) => new RegExp(`^${k}:[ \\t]*(.*)$`, 'mi').exec(st)?.[1]?.trim();
      if (/^\s*Enabled:\s*no\s*$/im.test(st) || !(field('Types') ?? '').split(/\s+/).includes('deb')) continue;
      const signed = field('Signed-By');
      for (const uri of (field('URIs') ?? '').split(/\s+/).filter(Boolean)) {
        out.push({ uri, suites: (field('Suites') ?? '').split(/\s+/).filter(Boolean), components: (field('Components') ?? '').split(/\s+/).filter(Boolean), ...(signed?.startsWith('/') ? { signedBy: signed } : {}) });
      }
    }
    return out;
  }
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const signed = /(?:^|\s)signed-by=(\S+)/.exec(m[1] ?? '')?.[1];
    out.push({ uri: m[2]!, suites: [m[3]!], components: (m[4] ?? '').split(/\s+/).filter(Boolean), ...(signed?.startsWith('/') ? { signedBy: signed } : {}) });
  }
  return out;
}
