// manifest.json in --out: what each wheel is, what it was built from and for, and how.
import fs from 'node:fs';
import path from 'node:path';

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

export function readManifest(out: string): Manifest | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(path.join(out, manifestName), 'utf8')) as Manifest;
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

/** Write atomically (rename), merged with the manifest already there, owned like the directory. */
export function writeManifest(out: string, manifest: Manifest, owner?: { uid: number; gid: number }): Manifest {
  const merged = mergeManifest(readManifest(out), manifest, (f) => fs.existsSync(path.join(out, f)));
  const file = path.join(out, manifestName);
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, `${JSON.stringify(merged, null, 2)}\n`);
  if (owner && (owner.uid !== 0 || owner.gid !== 0)) {
    try {
      fs.chownSync(tmp, owner.uid, owner.gid);
    } catch {
      // keep root's
    }
  }
  fs.renameSync(tmp, file);
  return merged;
}
