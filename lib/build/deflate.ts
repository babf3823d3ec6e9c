// The wheel's rewrite natively on the host: accelerated builds have the front end write wheels
// stored, since deflate under qemu takes seconds per megabyte; and every wheel gets its entry
// times set to SOURCE_DATE_EPOCH and its modes normalised, so two builds give the same bytes.
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../core/errors.js';
import { rewriteWheel } from '../wheel/index.js';

/**
 * Rewrite a wheel natively, beside it, while the caller goes on (verification runs in the chroot
 * meanwhile): its stored members deflated (`deflate`), its times and modes made reproducible
 * (`epoch`); `finish` puts the result in its place. A wheel left as built is still a valid wheel:
 * a failure here is logged and the build goes on with it.
 */
export function rewriteOnHost(file: string, log: string, o: { deflate: boolean; epoch?: number }): { finish(): Promise<void>; abandon(): Promise<void> } {
  const t0 = performance.now();
  const side = `${file}.rewritten`;
  fs.rmSync(side, { force: true });
  const done = rewriteWheel(file, side, o).then(
    (r) => r,
    (error: unknown) => {
      fs.appendFileSync(log, `imgbuild: could not rewrite ${path.basename(file)} on the host, it stays as built: ${errorMessage(error)}\n`);
      return undefined;
    },
  );
  return {
    async finish() {
      const r = await done;
      if (!r || !fs.existsSync(side)) return;
      fs.renameSync(side, file);
      const what = [...(r.deflated ? [`deflated ${r.deflated} member(s)`] : []), ...(o.epoch !== undefined ? [`set times to SOURCE_DATE_EPOCH ${o.epoch} and normalised modes`] : [])].join(', ');
      fs.appendFileSync(log, `imgbuild: ${path.basename(file)} rewritten on the host in ${Math.round(performance.now() - t0)} ms: ${what} (${r.bytesBefore} -> ${r.bytesAfter} bytes)\n`);
    },
    async abandon() {
      await done;
      fs.rmSync(side, { force: true });
    },
  };
}
