// The imgbuild command as one file (dist/imgbuild.mjs): Node loads one module instead of about 250
// (execa alone is a hundred), which halves its start-up, a third of a short session's time.
// Run by `npm run build` after tsc; the library (dist/lib) stays as tsc wrote it.
import { build } from 'esbuild';

await build({
  entryPoints: ['dist/bin/imgbuild.js'],
  outfile: 'dist/imgbuild.mjs',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node22',
  // CommonJS dependencies (yargs's, execa's) call require() for Node's own modules.
  // An older Node gets one line and exit 3 before any bundled module runs (yargs would throw).
  banner: {
    js: [
      "import { createRequire as __imgbuildCreateRequire } from 'node:module';",
      'const require = __imgbuildCreateRequire(import.meta.url);',
      "{ const [a, b] = process.versions.node.split('.').map(Number); if (a < 22 || (a === 22 && b < 12)) { process.stderr.write(`imgbuild: Node >= 22.12 is required (this is ${process.version}); scripts/setup-host.sh installs one under /opt/imgbuild/node\\n`); process.exit(3); } }",
    ].join('\n'),
  },
  logLevel: 'warning',
});
