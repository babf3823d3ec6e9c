// The code's structure, held: lib/ folders are layers that import only downwards (or within
// themselves), nothing imports in a circle, and bin/ reaches the library only through lib/index.ts.
// Read from the sources' import lines, so a move that tangles the layers fails here first.
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';

const root = process.cwd();
/** Lower numbers sit lower; a folder may import its own files and any folder of a lower number. */
const rank: Record<string, number> = { core: 0, parse: 1, undo: 2, targets: 2, host: 3, wheel: 4, session: 5, accel: 6, 'image-tools': 6, build: 7, 'index.ts': 8 };

function sources(dir: string): string[] {
  return fs.readdirSync(path.join(root, dir), { withFileTypes: true }).flatMap((e) => {
    const p = path.posix.join(dir, e.name);
    return e.isDirectory() ? sources(p) : p.endsWith('.ts') ? [p] : [];
  });
}

function imports(file: string): string[] {
  const text = fs.readFileSync(path.join(root, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)\b[^;]*?\bfrom '(\.[^']+)'/gms)].map((m) => path.posix.normalize(path.posix.join(path.posix.dirname(file), m[1]!.replace(/\.js$/, '.ts'))));
}

const lib = sources('lib');
const graph = new Map([...lib, ...sources('bin')].map((f) => [f, imports(f)]));
const layer = (f: string) => f.split('/')[1]!;

test('every lib folder has a layer, and imports go down (or stay in the folder)', (t) => {
  const unknown = [...new Set(lib.map(layer))].filter((l) => rank[l] === undefined);
  t.deepEqual(unknown, [], 'a new folder under lib/ needs a place in this test\'s ranks');
  const upward = lib.flatMap((f) => graph.get(f)!.filter((d) => d.startsWith('lib/') && layer(d) !== layer(f) && !(rank[layer(f)]! > rank[layer(d)]!)).map((d) => `${f} -> ${d}`));
  t.deepEqual(upward, []);
});

test('no import circles', (t) => {
  const circles: string[] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (f: string) => {
    state.set(f, 'open');
    stack.push(f);
    for (const d of graph.get(f) ?? []) {
      if (state.get(d) === 'open') circles.push([...stack.slice(stack.indexOf(d)), d].join(' -> '));
      else if (!state.has(d)) visit(d);
    }
    stack.pop();
    state.set(f, 'done');
  };
  for (const f of graph.keys()) if (!state.has(f)) visit(f);
  t.deepEqual(circles, []);
});

test('bin/ imports the library only through lib/index.ts', (t) => {
  const direct = [...graph].filter(([f]) => f.startsWith('bin/')).flatMap(([f, ds]) => ds.filter((d) => d.startsWith('lib/') && d !== 'lib/index.ts').map((d) => `${f} -> ${d}`));
  t.deepEqual(direct, []);
});
