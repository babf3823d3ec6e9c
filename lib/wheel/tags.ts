// The tags a wheel built for an image carries: CPython's ABI and the platform of the image's arch.
import { type Arch, archTable } from '../core/arch.js';

/** CPython's ABI tag: 3.7 and older default builds carry the pymalloc 'm' flag. */
export function pythonAbi(version: string): string {
  const [maj, min] = version.split('.').map(Number) as [number, number];
  const nodot = `${maj}${min}`;
  return maj === 3 && min < 8 ? `cp${nodot}m` : `cp${nodot}`;
}

/** The full tag triple a build for this Python and arch gets: "cp311-cp311-linux_aarch64". */
export function wheelTag(pythonVersion: string, arch: Arch): string {
  const nodot = pythonVersion.replace('.', '');
  return `cp${nodot}-${pythonAbi(pythonVersion)}-linux_${archTable[arch].wheelMachine}`;
}
