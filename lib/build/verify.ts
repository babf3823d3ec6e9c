// The checks a built wheel passes before it is reported: read from the build tree safely, fit
// for the image, loading and importing in its chroot; and what to do when it does not.
import fs from 'node:fs';
import path from 'node:path';
import type { AccelDecision } from '../accel/index.js';
import type { Arch } from '../core/arch.js';
import { errorMessage, StepError, tailLines } from '../core/errors.js';
import { checkpoint } from '../core/fault.js';
import { resolveInRoot } from '../host/safe-path.js';
import { readElfDynamic } from '../parse/elf.js';
import type { Session } from '../session/index.js';
import type { TargetPlan } from '../targets/index.js';
import { findLibrary, libraryDirs, verifyWheel, wheelElves, type WheelName, type WheelReport } from '../wheel/index.js';
import { slug } from './workspace.js';

/**
 * The wheels a build left in `wheelDir` of its tree. That tree is the chroot's to write while it
 * runs, and imgbuild reads, renames and copies these files on the host: the directory must be a
 * plain one (no symlink on the way, which could lead to a host directory) and each wheel a
 * regular file (not a symlink to a host file).
 */
export function builtWheels(srcHost: string, wheelDir: string, id: string): string[] {
  const want = `/${wheelDir.split('/').filter(Boolean).join('/')}`;
  let r;
  try {
    r = resolveInRoot(srcHost, want);
  } catch (error) {
    throw new StepError(`${id}: ${wheelDir}/ cannot be read: ${errorMessage(error)}`, 'a build step changed the tree\'s layout');
  }
  if (r.inner === want && r.type === 'missing') return [];
  if (r.inner !== want || r.type !== 'dir') {
    throw new StepError(`${id}: ${wheelDir}/ in the build tree is not a plain directory (it leads to ${r.inner}, ${r.type}): wheels are not read through it`, 'a build step replaced it with a symlink or a file; check the project\'s build scripts');
  }
  const files: string[] = [];
  for (const name of fs.readdirSync(r.host).filter((f) => f.endsWith('.whl')).sort()) {
    const file = path.join(r.host, name);
    if (!fs.lstatSync(file).isFile()) {
      throw new StepError(`${id}: ${wheelDir}/${name} is not a regular file (a symlink?): it is not read`, 'a build step put a link where a wheel belongs; check the project\'s build scripts');
    }
    files.push(file);
  }
  return files;
}

/** Libraries a wheel ships, by file name: ld.so finds a DT_NEEDED by file name, not by DT_SONAME. */
export function sonamesOf(file: string): string[] {
  return [...new Set(wheelElves(file).map((e) => path.posix.basename(e.member)))];
}

/**
 * The checks a wheel must pass before it is reported: tags and ELF machines fit the image, every
 * NEEDED library resolves in the image as the user has it (not in the build layer), and the
 * module imports from a throwaway install in the chroot.
 */
export async function verify(
  s: Session,
  file: string,
  t: TargetPlan,
  o: { inner: string; lowerRoot: string; buildRoot: string; provided: string[]; python: string; log: string; accel?: AccelDecision },
): Promise<WheelName> {
  checkpoint('build:verify');
  const report = verifyWheel(file, { rootHost: o.lowerRoot, arch: s.arch, python: o.python, provided: o.provided });
  const problems = [...report.problems];
  if (report.unresolved.length > 0) {
    const dirs = libraryDirs(o.buildRoot, s.arch);
    for (const u of report.unresolved) {
      if (findLibrary(o.buildRoot, dirs, u.soname, s.arch)) {
        problems.push(`${u.soname} exists only in the build layer (installed during the build, not in the image): the wheel would not load on the board. Install the package that provides it in the image, or link it statically`);
      }
    }
  }
  const hints = ['the wheel was not copied to --out'];
  if (report.missingVersions.length > 0) hints.unshift(...versionHints(report.missingVersions, o.buildRoot, s.arch, o.accel));
  if (problems.length > 0) {
    throw new StepError(`${t.id}: ${path.basename(file)} does not fit the image:\n${problems.map((p) => `  - ${p}`).join('\n')}`, hints.join('; '));
  }
  const dest = `/tmp/imgbuild-verify-${slug(t)}`;
  const script = [
    'import importlib, shutil, sys, zipfile',
    'whl, dest, mod = sys.argv[1:4]',
    'shutil.rmtree(dest, ignore_errors=True)',
    'zipfile.ZipFile(whl).extractall(dest)',
    'sys.path.insert(0, dest)',
    'try:',
    '    m = importlib.import_module(mod)',
    '    where = getattr(m, "__file__", "") or ""',
    '    print("imported", mod, "from", where)',
    'finally:',
    '    shutil.rmtree(dest, ignore_errors=True)',
    'sys.exit(0 if where.startswith(dest + "/") else 3)',
  ].join('\n');
  // The same process removes its copy: no second emulated process for an rm.
  const r = await s.exec(['python3', '-c', script, o.inner, dest, t.importName], { cwd: '/tmp', logFile: o.log, allowFailure: true, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  if (r.exitCode === 3) {
    throw new StepError(`${t.id}: import ${t.importName} did not come from ${path.basename(file)} (${r.all.trim().split('\n').pop()})`, `set the module with the recipe option import=NAME, e.g. --target ${t.id},import=mymodule`);
  }
  if (r.exitCode !== 0) {
    throw new StepError(`${t.id}: python3 -c "import ${t.importName}" fails with ${path.basename(file)} installed:\n${tailLines(r.all, 30)}`, `if the module has another name, pass import=NAME (--target ${t.id},import=NAME); full log: ${o.log}`);
  }
  return report.name;
}

// Why a wheel needs symbol versions the image lacks, and what to do: the likely cause first.
function versionHints(missing: WheelReport['missingVersions'], buildRoot: string, arch: Arch, accel: AccelDecision | undefined): string[] {
  const hints: string[] = [];
  const dirs = libraryDirs(buildRoot, arch);
  const layer = missing.filter((m) => {
    const inner = findLibrary(buildRoot, dirs, m.file, arch);
    if (!inner) return false;
    const r = resolveInRoot(buildRoot, inner);
    const defs = r.type === 'file' ? (readElfDynamic(fs.readFileSync(r.host))?.verdef ?? []) : [];
    return m.versions.every((v) => defs.includes(v));
  });
  for (const m of layer) hints.push(`the build layer has a newer ${m.file} than the image (installed during the build): install that package into the image first (--persist), or build against the image's version`);
  if (accel && accel.kind !== 'none' && accel.forced) {
    hints.push(`it was compiled by the host's gcc ${accel.host.major}, forced over the image's gcc ${accel.image.major} (--accel-gcc): build without --accel-gcc, or with --accel none`);
  } else if (layer.length < missing.length) {
    hints.push("the image's compiler or headers are newer than its runtime libraries (a toolchain installed apart from the system's libstdc++, say): install the matching runtime in the image, or link the library statically (e.g. LDFLAGS=-static-libstdc++)");
  }
  return hints;
}
