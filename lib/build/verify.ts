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
import { readZip } from '../parse/zip.js';
import type { Session } from '../session/index.js';
import type { TargetPlan } from '../targets/index.js';
import { findLibrary, libraryDirs, verifyWheel, wheelElves, wheelModules, type WheelName, type WheelReport } from '../wheel/index.js';
import { runSmokeTest, runTestCommand } from './test-command.js';
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
  o: { inner: string; lowerRoot: string; buildRoot: string; provided: string[]; python: string; log: string; accel?: AccelDecision; test?: { command: string; project: string } },
): Promise<WheelName> {
  checkpoint('build:verify');
  const report = verifyWheel(file, { rootHost: o.lowerRoot, arch: s.arch, machine: s.machine, python: o.python, provided: o.provided });
  const problems = [...report.problems, ...missingMembers(file, t)];
  if (report.unresolved.length > 0) {
    const dirs = libraryDirs(o.buildRoot, s.arch);
    for (const u of report.unresolved) {
      if (!findLibrary(o.buildRoot, dirs, u.soname, s.arch)) continue;
      const pkg = await packageOf(s, u.soname);
      const fix = pkg ? `It comes from ${pkg}: if the board has ${pkg} installed, say so with runtime=${pkg} (--target ${t.id},runtime=${pkg}); else install it in the image, or link it statically` : 'Install the package that provides it in the image, or link it statically';
      problems.push(`${u.soname} exists only in the build layer (installed during the build, not in the image): the wheel would not load on the board. ${fix}`);
    }
  }
  const hints = ['the wheel was not copied to --out'];
  if (report.missingVersions.length > 0) hints.unshift(...versionHints(report.missingVersions, o.buildRoot, s.arch, o.accel));
  if (problems.length > 0) {
    throw new StepError(`${t.id}: ${path.basename(file)} does not fit the image:\n${problems.map((p) => `  - ${p}`).join('\n')}`, hints.join('; '));
  }
  await importCheck(s, file, t, o);
  await runSmokeTest(s, file, t, o);
  if (o.test) await runTestCommand(s, file, t, { ...o.test, inner: o.inner, log: o.log });
  return report.name;
}

// The Debian package of the build layer that ships a library, by its file name (dpkg -S).
async function packageOf(s: Session, soname: string): Promise<string | undefined> {
  const r = await s.exec(['dpkg-query', '-S', `*/${soname}`], { allowFailure: true, quiet: true });
  return r.exitCode === 0 ? /^([^:,\s]+)/.exec(r.stdout)?.[1] : undefined;
}

// The members the recipe says its wheel must have (the QNN provider of an ep=qnn onnxruntime).
function missingMembers(file: string, t: TargetPlan): string[] {
  if (!t.wheelMembers?.length) return [];
  const names = readZip(file).map((e) => e.name);
  return t.wheelMembers.filter((m) => !names.some((n) => new RegExp(m.pattern).test(n))).map((m) => `it has no member matching ${m.pattern} (${m.why})`);
}

// Each module imported from a throwaway copy of the wheel in the chroot, in one process that
// also removes the copy (no second emulated process for an rm). Exit 3: a module came from elsewhere.
const importScript = [
  'import importlib, shutil, sys, zipfile',
  'whl, dest, mods = sys.argv[1], sys.argv[2], sys.argv[3:]',
  'shutil.rmtree(dest, ignore_errors=True)',
  'zipfile.ZipFile(whl).extractall(dest)',
  'sys.path.insert(0, dest)',
  'stray = []',
  'try:',
  '    for mod in mods:',
  '        m = importlib.import_module(mod)',
  '        where = getattr(m, "__file__", None) or ",".join(getattr(m, "__path__", []))',
  '        print("imported", mod, "from", where)',
  '        if not where.startswith(dest + "/"):',
  '            stray.append(mod)',
  'finally:',
  '    shutil.rmtree(dest, ignore_errors=True)',
  'sys.exit(3 if stray else 0)',
].join('\n');

async function importCheck(s: Session, file: string, t: TargetPlan, o: { inner: string; log: string }): Promise<void> {
  const modules = t.importName ? [t.importName] : wheelModules(file);
  if (modules.length === 0) {
    fs.appendFileSync(o.log, `imgbuild: ${path.basename(file)} installs no module: nothing to import\n`);
    return;
  }
  const r = await s.exec(['python3', '-c', importScript, o.inner, `/tmp/imgbuild-verify-${slug(t)}`, ...modules], { cwd: '/tmp', logFile: o.log, allowFailure: true, env: { PYTHONDONTWRITEBYTECODE: '1' } });
  const imports = modules.map((m) => `import ${m}`).join('; ');
  if (r.exitCode === 3) {
    throw new StepError(`${t.id}: ${imports} did not come from ${path.basename(file)} (${r.all.trim().split('\n').pop()})`, `set the module with the recipe option import=NAME, e.g. --target ${t.id},import=mymodule`);
  }
  if (r.exitCode !== 0) {
    throw new StepError(`${t.id}: python3 -c "${imports}" fails with ${path.basename(file)} installed:\n${tailLines(r.all, 30)}`, `if the module has another name, pass import=NAME (--target ${t.id},import=NAME); full log: ${o.log}`);
  }
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
