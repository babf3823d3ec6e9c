// Check the request before anything is mounted: targets and options, --source and --with-wheel
// paths, --out and the workspace. Bad input fails here and changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { PreconditionError, UsageError } from '../core/errors.js';
import { normalizeName, orderPlans, planTarget, type TargetPlan } from '../targets/index.js';
import { isSdist } from '../targets/local.js';
import { parseTargetArg, type TargetArg } from '../targets/spec.js';
import { parseWheelName } from '../wheel/index.js';
import type { Inputs } from './run.js';
import { declaredName, declaredNameInArchive } from './project-meta.js';
import { resolvePip } from './pip-sources.js';
import { checkProjectPath, gitCacheDir } from './sources.js';
import type { BuildRequest } from './types.js';
import { checkWritable, defaultWorkspace } from './workspace.js';

export async function checkRequest(ctx: Context, req: BuildRequest): Promise<Inputs> {
  const cwd = req.cwd ?? process.cwd();
  if (req.targets.length === 0) throw new UsageError('no --target given', 'e.g. --target torch@1.1.0 or --target local:./myproject; `imgbuild targets` lists the recipes');
  if (req.jobs !== 'auto' && (!Number.isInteger(req.jobs) || req.jobs < 1)) throw new UsageError(`--jobs ${req.jobs} is not a positive integer or auto`);
  const args = req.targets.map((t) => withGlobalOptions(parseTargetArg(t, cwd), req));
  // A project says its own name (needs= of other targets use it), whatever its file is called.
  for (const a of args) {
    if (a.spec.kind !== 'local' || a.options.name !== undefined) continue;
    const name = isDirectory(a.spec.path) ? declaredName(a.spec.path) : isSdist(a.spec.path) && isFile(a.spec.path) ? await declaredNameInArchive(ctx, a.spec.path) : undefined;
    if (name) a.options.name = name;
  }

  // Plan once with stand-in facts: unknown recipes, versions and options fail here, before the image is read.
  const draft = args.map((a) => planTarget(a.spec, { jobs: 1, python: '3.11', arch: 'aarch64', recipeOptions: a.options }));
  const sources = checkSources(ctx, req.sources, draft, cwd);

  const wheels = req.withWheels.map((w) => {
    const p = path.resolve(cwd, w);
    if (!fs.existsSync(p) || !fs.statSync(p).isFile()) throw new PreconditionError(`--with-wheel ${w}: no such file`, 'give the path of a .whl file');
    return { path: p, name: parseWheelName(p) };
  });

  // Cycles and duplicates are usage errors too: find them before the image is read.
  orderPlans(draft, wheels.map((w) => w.name.distribution));
  for (const b of draft.flatMap((t) => (t.binds ?? []).map((x) => ({ ...x, id: t.id })))) {
    if (!fs.existsSync(b.source) || !fs.statSync(b.source).isDirectory()) throw new PreconditionError(`${b.id}: ${b.what} ${b.source} is not a directory on this host`, 'give the directory where it is installed');
  }

  const out = path.resolve(cwd, req.out);
  if (!req.dryRun) checkWritable(out, '--out');
  const workspace = req.workspace ? path.resolve(cwd, req.workspace) : defaultWorkspace(ctx.cacheDir, path.resolve(cwd, req.image));
  if (req.workspace) {
    if (fs.existsSync(workspace) && !fs.statSync(workspace).isDirectory()) throw new PreconditionError(`--workspace ${workspace} is not a directory`);
    if (!req.dryRun) checkWritable(workspace, '--workspace');
  }
  if (/[,:\\\s]/.test(workspace)) throw new PreconditionError(`workspace ${workspace} has a comma, colon, backslash or space`, 'the build layer lives there and overlayfs cannot take such paths: choose a plain one');
  const pip = resolvePip(req.pip, cwd);
  if (pip.offline) for (const p of draft) if (p.source.kind === 'git' && !sources.has(normalizeName(p.name))) checkGitCached(ctx, p.source.url, p.id);
  return { args, sources, wheels, out, workspace, defaultWorkspace: !req.workspace, pip };
}

// --source NAME=PATH by normalized target name; every target's source path is checked too.
function checkSources(ctx: Context, given: string[], draft: TargetPlan[], cwd: string): Map<string, string> {
  const sources = new Map<string, string>();
  for (const s of given) {
    const m = /^([^=]+)=(.+)$/.exec(s);
    if (!m) throw new UsageError(`--source ${s} is not NAME=PATH`, 'e.g. --source torch=/src/pytorch');
    const given = normalizeName(m[1]!.trim());
    // By the target's name, or by its recipe's (onnxruntime for the onnxruntime_qnn that ep=qnn builds).
    const target = draft.find((p) => normalizeName(p.name) === given) ?? draft.find((p) => normalizeName(p.id.split('@')[0]!) === given);
    if (!target) throw new UsageError(`--source ${m[1]}: no target called ${m[1]}`, `targets: ${draft.map((p) => p.name).join(', ')}`);
    const name = normalizeName(target.name);
    const p = path.resolve(cwd, m[2]!);
    checkProjectPath(p, `--source ${m[1]}`);
    if (sources.has(name)) throw new UsageError(`--source ${m[1]} given twice`);
    sources.set(name, p);
  }
  for (const p of draft) if (p.source.kind === 'path' && !sources.has(normalizeName(p.name))) checkProjectPath(p.source.path, p.id);
  for (const p of draft) {
    if (p.source.kind === 'git' && !sources.has(normalizeName(p.name)) && !p.id.startsWith('git:')) {
      ctx.emit({ kind: 'info', message: `${p.id}: source from ${p.source.url} at ${p.source.ref} (use --source ${p.name}=PATH for a local checkout)` });
    }
  }
  return sources;
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

function isFile(p: string): boolean {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

// --apt, --env, --config-setting and --runtime-apt as every target's options, before its own.
function withGlobalOptions(arg: TargetArg, req: BuildRequest): TargetArg {
  const options = { ...arg.options };
  const put = (key: string, global: string[] | undefined, join: string) => {
    if (!global?.length) return;
    options[key] = [...global, ...(options[key] !== undefined ? [options[key]] : [])].join(join);
  };
  put('apt', req.apt, '+');
  put('runtime', req.runtimeApt, '+');
  put('env', req.env, ',');
  put('config', req.configSettings, ',');
  return { ...arg, options };
}

// --offline: a git source must be in the cache already (a failure later would come after mounting).
function checkGitCached(ctx: Context, url: string, id: string): void {
  if (!fs.existsSync(path.join(gitCacheDir(ctx.cacheDir, url), '.git'))) {
    throw new PreconditionError(`${id}: --offline, and ${url} is not in the source cache`, 'build it once with the network, or give a local checkout with --source NAME=PATH');
  }
}
