// The --dry-run listing of a plan.
import { human } from '../core/units.js';
import type { BuildPlan } from './types.js';
import type { ResolvedPip } from './pip-sources.js';
import { slug } from './workspace.js';

/** The --dry-run listing: host steps with their undo, then per target what runs in the chroot. */
export function formatPlan(plan: BuildPlan): string {
  const f = plan.facts;
  const lines = [
    `image:     ${plan.image}`,
    `           ${f.os.PRETTY_NAME ?? 'unknown OS'}, ${f.arch}, python ${f.python?.version ?? '?'}, glibc ${f.glibc ?? '?'}, wheel tag ${f.wheelTag ?? '?'}`,
    `mode:      ${plan.mode === 'persist' ? 'persist: apt and pip installs are written into the image' : 'overlay: the image stays unchanged; installs go to a throwaway layer'}`,
    `jobs:      ${plan.jobs}`,
    `compiler:  ${plan.accel}`,
    `workspace: ${plan.workspace}`,
    `out:       ${plan.out} (wheels, manifest.json, logs/)`,
    '',
    'host steps (each undone in reverse order, also after an error, Ctrl-C or SIGTERM; `imgbuild recover` after kill -9):',
    ...plan.hostSteps.map((s, i) => `  ${String(i + 1).padStart(2)}. ${s.step}\n      undo: ${s.undo}`),
    '',
    `apt packages (${plan.mode === 'persist' ? 'into the image' : 'into the build layer'}): ${plan.apt.length ? plan.apt.join(' ') : 'none'}`,
    ...plan.aptReasons.map((r) => `  added ${r}`),
    ...(plan.pipSources.offline && plan.targets.some((t) => t.pip.length > 0) ? ['  offline: the targets\' pip requirements the image lacks are installed from its apt (numpy -> python3-numpy), when its archive has them'] : []),
    `python packages: ${describePip(plan.pipSources)}`,
  ];
  if (plan.withWheels.length) lines.push('', 'wheels installed first (--with-wheel):', ...plan.withWheels.map((w) => `  ${w.name} ${w.version}: ${w.path}`));
  for (const [i, t] of plan.targets.entries()) {
    const src = t.source.kind === 'git' ? `git ${t.source.url} at ${t.source.ref}${t.source.submodules ? ' with submodules' : ''} (cloned on the host into the cache)` : `${t.source.path} (copied on the host${t.source.kind === 'path' ? ', without top-level build/ and dist/' : ''})`;
    lines.push(
      '',
      `target ${i + 1}/${plan.targets.length}: ${t.id}`,
      `  source:   ${src}`,
      `  in:       /workspace/src/${slug(t)}`,
      ...(t.binds ?? []).map((b) => `  bind:     ${b.source} at ${b.inner} (read-only, ${b.what})`),
      ...(t.needs.length ? [`  needs:    ${t.needs.map((n) => (t.fromEnvironment?.includes(n) ? `${n} (from the build environment${t.withDebianNeed?.[n] ? `; from Debian with ${t.withDebianNeed[n]!.join(' ')}` : ''})` : `${n} (installed first)`)).join(', ')}`] : []),
      ...(t.runtimeApt?.length ? [`  runtime:  ${t.runtimeApt.join(' ')} (the board's: their libraries count in verification)`] : []),
      `  pip:      ${t.pip.length ? t.pip.join(' ') : 'none'}`,
      '  env:',
      ...Object.entries(t.env).map(([k, v]) => `    ${k}=${v}`),
      '  commands:',
      ...t.commands.map((c) => `    ${c.join(' ')}`),
      `  wheel:    ${t.wheelDir}/*.whl, then checked: tags ${f.wheelTag ?? ''}, ELF machine ${f.arch}, NEEDED libraries and symbol versions in the image, ${t.importName ? `python3 -c "import ${t.importName}"` : 'an import of each top-level module it ships'}${t.smokeTest ? `, the recipe's smoke test (${t.smokeTest.what})` : ''}`,
      ...(plan.testCommand ? [`  test:     ${plan.testCommand}`] : []),
      `  space:    about ${human(t.diskBytes)}; memory about ${human(t.memoryPerJobBytes)} per job`,
      ...t.notes.map((n) => `  note:     ${n}`),
      ...t.warnings.map((w) => `  warning:  ${w}`),
    );
  }
  if (plan.warnings.length) lines.push('', 'warnings:', ...plan.warnings.map((w) => `  ${w}`));
  return lines.join('\n');
}

function describePip(p: ResolvedPip): string {
  const from = (k: string) => (p.from[k] ? ` (${p.from[k]})` : '');
  const parts = [
    p.offline ? `offline: no package index${from('no-index')}` : `index ${p.indexUrl ?? 'pip\'s default'}${from('index-url')}`,
    ...(p.extraIndexUrls.length ? [`extra ${p.extraIndexUrls.join(' ')}${from('extra-index-url')}`] : []),
    ...(p.findLinks.length ? [`find-links ${p.findLinks.join(' ')}${from('find-links')} (read-only in the chroot)`] : []),
  ];
  return `${parts.join('; ')}; build requirements a project lacks are installed into the workspace, never the image`;
}
