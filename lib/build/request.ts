// Check the request before anything is mounted: targets and options, --source and --with-wheel
// paths, --out and the workspace. Bad input fails here and changes nothing.
import fs from 'node:fs';
import path from 'node:path';
import type { Context } from '../core/context.js';
import { PreconditionError, UsageError } from '../core/errors.js';
import { normalizeName, orderPlans, planTarget, type TargetPlan } from '../targets/index.js';
import { parseTargetArg } from '../targets/spec.js';
import { parseWheelName } from '../wheel/index.js';
import type { Inputs } from './run.js';
import { checkProjectPath, declaredName } from './sources.js';
import type { BuildRequest } from './types.js';
import { checkWritable, defaultWorkspace } from './workspace.js';

export function checkRequest(ctx: Context, req: BuildRequest): Inputs {
  const cwd = req.cwd ?? process.cwd();
  if (req.targets.length === 0) throw new UsageError('no --target given', 'e.g. --target torch@1.1.0 or --target local:./myproject; `imgbuild targets` lists the recipes');
  if (req.jobs !== 'auto' && (!Number.isInteger(req.jobs) || req.jobs < 1)) throw new UsageError(`--jobs ${req.jobs} is not a positive integer or auto`);
  const args = req.targets.map((t) => parseTargetArg(t, cwd));
  // A project directory says its own name: needs= of other targets and the import test use it.
  for (const a of args) {
    if (a.spec.kind === 'local' && a.options.name === undefined && isDirectory(a.spec.path)) {
      const name = declaredName(a.spec.path);
      if (name) a.options.name = name;
    }
  }

  // Plan once with stand-in facts: unknown recipes, versions and options fail here, before the image is read.
  const draft = args.map((a) => planTarget(a.spec, { jobs: 1, python: '3.11', arch: 'aarch64', recipeOptions: a.options }));
  const sources = checkSources(ctx, req.sources, draft, cwd);

  const wheels = req.withWheels.map((w) => {
    const p = path.resolve(cwd, w);
    if (!fs.existsSync(p) || !fs.statSync(p).isFile()) throw new PreconditionError(`--with-wheel ${w}: no such file`, 'give the path of a .whl file');
    return { path: p, name: parseWheelName(p) };
  });

  // Unmet needs, cycles and duplicates are usage errors too: find them before the image is read.
  orderPlans(draft, wheels.map((w) => w.name.distribution));

  const out = path.resolve(cwd, req.out);
  if (!req.dryRun) checkWritable(out, '--out');
  const workspace = req.workspace ? path.resolve(cwd, req.workspace) : defaultWorkspace(ctx.cacheDir, path.resolve(cwd, req.image));
  if (req.workspace) {
    if (fs.existsSync(workspace) && !fs.statSync(workspace).isDirectory()) throw new PreconditionError(`--workspace ${workspace} is not a directory`);
    if (!req.dryRun) checkWritable(workspace, '--workspace');
  }
  if (/[,:\\\s]/.test(workspace)) throw new PreconditionError(`workspace ${workspace} has a comma, colon, backslash or space`, 'the build layer lives there and overlayfs cannot take such paths: choose a plain one');
  return { args, sources, wheels, out, workspace, defaultWorkspace: !req.workspace };
}

// --source NAME=PATH by normalized target name; every target's source path is checked too.
function checkSources(ctx: Context, given: string[], draft: TargetPlan[], cwd: string): Map<string, string> {
  const sources = new Map<string, string>();
  for (const s of given) {
    const m = /^([^=]+)=(.+)$/.exec(s);
    if (!m) throw new UsageError(`--source ${s} is not NAME=PATH`, 'e.g. --source torch=/src/pytorch');
    const name = normalizeName(m[1]!.trim());
    const target = draft.find((p) => normalizeName(p.name) === name);
    if (!target) throw new UsageError(`--source ${m[1]}: no target called ${m[1]}`, `targets: ${draft.map((p) => p.name).join(', ')}`);
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
