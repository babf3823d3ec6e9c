// Target specs as written on the command line: torch@1.1.0, onnx, local:PATH, git:URL@REF.
// Pure: local paths are made absolute but not checked; the build checks them.
import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { recipeNames } from './registry.js';
import type { TargetSpec } from './types.js';

export type { TargetSpec } from './types.js';

function forms(): string {
  return `known recipes: ${recipeNames().join(', ')} (as NAME or NAME@VERSION); or local:PATH, git:URL@REF`;
}

function bad(text: string, why: string, hint = forms()): UsageError {
  return new UsageError(`bad target spec '${text}': ${why}`, hint);
}

export function parseTargetSpec(text: string, cwd: string = process.cwd()): TargetSpec {
  const spec = text.trim();
  if (spec === '') throw bad(text, 'empty');
  if (spec.startsWith('local:')) return parseLocal(text, spec.slice('local:'.length), cwd);
  if (spec.startsWith('git:')) return parseGit(text, spec.slice('git:'.length));

  const m = /^([A-Za-z][A-Za-z0-9_.-]*)(?:@(.*))?$/.exec(spec);
  if (!m) {
    const eq = /^([A-Za-z][A-Za-z0-9_.-]*)==(.+)$/.exec(spec);
    throw bad(text, 'not NAME@VERSION', eq ? `write ${eq[1]}@${eq[2]}; ${forms()}` : forms());
  }
  const name = m[1]!.toLowerCase();
  const version = m[2];
  if (!recipeNames().includes(name)) throw bad(text, `no recipe called ${name}`);
  if (version === undefined) return { kind: 'recipe', name };
  const v = version.replace(/^v(?=\d)/, '');
  if (!/^\d+(\.\d+)*([A-Za-z0-9.+-]*)$/.test(v)) throw bad(text, `'${version}' is not a version`, `write e.g. ${name}@1.2.0; ${forms()}`);
  return { kind: 'recipe', name, version: v };
}

function parseLocal(text: string, p: string, cwd: string): TargetSpec {
  if (p === '') throw bad(text, 'local: needs a path', `e.g. local:./myproject or local:/src/foo-1.0.tar.gz; ${forms()}`);
  // The shell leaves ~ alone after "local:", and under sudo it would mean root's home anyway.
  if (p.startsWith('~')) throw bad(text, '~ is not expanded here', `write the path out, e.g. local:$HOME${p.slice(1)}`);
  return { kind: 'local', path: path.resolve(cwd, p) };
}

// The ref follows the last '@' after the URL's host part, so the user@ of an scp-like URL
// (git@host:x.git@v2) or of https://user@host/x.git@v1 is not taken for it.
function parseGit(text: string, body: string): TargetSpec {
  const example = `e.g. git:https://github.com/owner/repo.git@v1.0 or git:git@github.com:owner/repo.git@main; ${forms()}`;
  if (body === '') throw bad(text, 'git: needs URL@REF', example);
  const at = body.lastIndexOf('@');
  if (at < pathStart(body)) throw bad(text, 'no @REF after the URL (a tag, branch or commit)', example);
  const url = body.slice(0, at);
  const ref = body.slice(at + 1);
  if (url === '') throw bad(text, 'empty URL', example);
  // git check-ref-format forbids these; a commit id passes.
  if (ref === '' || /[\s~^:?*[\\]|\.\.|^-/.test(ref)) throw bad(text, `'${ref}' is not a git ref`, example);
  return { kind: 'git', url, ref };
}

// Index where the path begins: after scheme://authority, after host: in scp-like form, or 0.
function pathStart(url: string): number {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(url);
  if (scheme) {
    const slash = url.indexOf('/', scheme[0].length);
    return slash === -1 ? url.length : slash;
  }
  if (url.startsWith('/') || url.startsWith('.')) return 0;
  const colon = url.indexOf(':');
  return colon === -1 ? 0 : colon;
}

export interface TargetArg {
  spec: TargetSpec;
  /** Recipe options written after the spec: torch@1.1.0 has none; onnxruntime@1.23.0,ep=qnn,qnn_home=/opt/qairt. */
  options: Record<string, string>;
}

/**
 * A --target value: SPEC[,KEY=VALUE...]. A part without '=' continues the previous value, so
 * local:./b,needs=a,c reads as needs "a,c".
 */
export function parseTargetArg(text: string, cwd: string = process.cwd()): TargetArg {
  const m = /,(?=[A-Za-z_][A-Za-z0-9_-]*=)/.exec(text);
  const specText = m ? text.slice(0, m.index) : text;
  const options: Record<string, string> = {};
  if (m) {
    let last: string | undefined;
    for (const part of text.slice(m.index + 1).split(',')) {
      const kv = /^([A-Za-z_][A-Za-z0-9_-]*)=(.*)$/.exec(part);
      if (kv) {
        last = kv[1]!;
        options[last] = options[last] !== undefined ? `${options[last]},${kv[2]!}` : kv[2]!;
      } else if (last !== undefined) {
        options[last] = `${options[last]},${part}`;
      }
    }
  }
  return { spec: parseTargetSpec(specText, cwd), options };
}
