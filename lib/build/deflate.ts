// Deflating a wheel natively on the host: accelerated builds have the front end write wheels
// stored, since deflate under qemu takes seconds per megabyte.
import fs from 'node:fs';
import path from 'node:path';
import { errorMessage } from '../core/errors.js';
import { deflateStored } from '../wheel/index.js';

/**
 * Deflate a wheel's stored members natively, beside it, while the caller goes on (verification
 * runs in the chroot meanwhile); `finish` puts the result in its place. A wheel left stored is
 * still a valid wheel: a failure here is logged and the build goes on with it.
 */
export function deflateOnHost(file: string, log: string): { finish(): Promise<void>; abandon(): Promise<void> } {
  const t0 = performance.now();
  const side = `${file}.deflated`;
  fs.rmSync(side, { force: true });
  const done = deflateStored(file, side).then(
    (r) => r,
    (error: unknown) => {
      fs.appendFileSync(log, `imgbuild: could not deflate ${path.basename(file)} on the host, it stays uncompressed: ${errorMessage(error)}\n`);
      return undefined;
    },
  );
  return {
    async finish() {
      const r = await done;
      if (!r || r.deflated === 0) return;
      fs.renameSync(side, file);
      fs.appendFileSync(log, `imgbuild: deflated ${r.deflated} member(s) of ${path.basename(file)} on the host in ${Math.round(performance.now() - t0)} ms (${r.bytesBefore} -> ${r.bytesAfter} bytes)\n`);
    },
    async abandon() {
      await done;
      fs.rmSync(side, { force: true });
    },
  };
}
