// manifest.json in --out: what each wheel is, what it was built from and for, and how.
import fs from 'node:fs';
import path from 'node:path';
import { type HeldDir, type Owner, shownPath } from '../core/held-dir.js';

export interface ManifestImage {
  path: string;
  /** sha256 of the image file (after the build, with --persist). */
  sha256: string;
  os: Record<string, string>;
  glibc?: string;
  python: string;
  /** The interpreter built for and with (--python), e.g. /usr/local/share/pynq-venv/bin/python3. */
  interpreter?: string;
  arch: string;
  wheelTag?: string;
}

export interface ManifestWheel {
  file: string;
  sha256: string;
  size: number;
  tags: { python: string[]; abi: string[]; platform: string[] };
  /** Distribution name and version, from the wheel. */
  name: string;
  version: string;
  /** The --target it came from, and the recipe version. */
  target: string;
  targetVersion?: string;
  source: { origin: string; commit?: string };
  /** The recipe environment the build ran with. */
  env: Record<string, string>;
  commands: string[][];
  image: ManifestImage;
  /** `cc --version` in the chroot. */
  compiler?: string;
  /** Set when the wheel came from the wheel cache: the cache key. */
  cached?: string;
  /** How the compiler ran: host-native cross (accel) or emulated, and why. */
  accel?: string;
  /** Where the build's front end and backend ran: a host Python of the image's version (--accel full), or the image's under emulation and why. */
  python?: string;
  /** --accel full: what ran as the host's own programs for the image ("python (3.11.2)", "make (make 4.3-4.1)"); the compilers are in `accel`. */
  native?: string[];
  seconds: number;
  /** SOURCE_DATE_EPOCH the build got and the wheel's entry times (the source's commit time or newest file). */
  sourceDateEpoch?: number;
  log: string;
  /** The build requirements, the versions that met them and where those were (the image or the workspace). */
  buildRequirements?: BuiltWith[];
  /** The apt packages installed for the build (the plan's), with their versions. */
  aptPackages?: Record<string, string>;
  /** Debian packages the wheel needs on the board (runtime=), piwheels style. */
  runtimeApt?: string[];
  /** Where pip looked while building: the sources and where each setting came from. */
  pipSources?: { offline: boolean; indexUrl?: string; extraIndexUrls: string[]; findLinks: string[]; from: Record<string, string> };
}

/** One build requirement as the wheel front end met it. */
export interface BuiltWith {
  requirement: string;
  version: string | null;
  /** The image (or an apt= package), the workspace (pip installed it for the build), or a program on PATH (the image's cmake for PyPI's cmake). */
  from: 'image' | 'workspace' | 'program';
  /** The program, when from is 'program'. */
  path?: string;
}

export interface Manifest {
  version: 1;
  /** The image of the latest run. */
  image: ManifestImage;
  wheels: ManifestWheel[];
}

export const manifestName = 'manifest.json';

export function readManifest(out: string | HeldDir): Manifest | undefined {
  try {
    const text = typeof out === 'string' ? fs.readFileSync(path.join(out, manifestName), 'utf8') : out.read(manifestName);
    const m = JSON.parse(text ?? '') as Manifest;
    return m.version === 1 && Array.isArray(m.wheels) ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Entries of an earlier run stay while their wheel file is still there and this run did not
 * replace it, so building torch and then torchvision into one --out lists both.
 */
export function mergeManifest(old: Manifest | undefined, next: Manifest, exists: (file: string) => boolean): Manifest {
  const mine = new Set(next.wheels.map((w) => w.file));
  const kept = (old?.wheels ?? []).filter((w) => !mine.has(w.file) && exists(w.file));
  return { ...next, wheels: [...kept, ...next.wheels] };
}

/** Write atomically (rename, through --out's descriptor), merged with the manifest already there, owned like the directory. */
export function writeManifest(out: HeldDir, manifest: Manifest, owner?: Owner): Manifest {
  const exists = (f: string) => {
    try {
      return fs.existsSync(out.at(f));
    } catch {
      return false; // an old manifest's entry that is no file name
    }
  };
  const merged = mergeManifest(readManifest(out), manifest, exists);
  merged.wheels = merged.wheels.map((w) => (w.log ? { ...w, log: shownPath(w.log) } : w));
  out.put(manifestName, { data: `${JSON.stringify(merged, null, 2)}\n` }, owner);
  return merged;
}
