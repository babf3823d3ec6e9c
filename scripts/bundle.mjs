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
  target: 'node20',
  // CommonJS dependencies (yargs's, execa's) call require() for Node's own modules.
  banner: { js: "import { createRequire as __imgbuildCreateRequire } from 'node:module';\nconst require = __imgbuildCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
