// sha256 of a file, streamed (images are gigabytes). A Buffer path names a file whose name is not UTF-8.
import crypto from 'node:crypto';
import fs from 'node:fs';

export function hashFile(file: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha256');
    fs.createReadStream(file, { highWaterMark: 1 << 20 })
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}
