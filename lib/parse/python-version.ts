// The X.Y.Z of a CPython binary, read from its bytes (nothing runs): PY_VERSION is a string of its own.

/** The version X.Y.N found in a python binary's contents, for the X.Y it is named after; undefined when absent. */
export function pythonVersionIn(binary: Buffer, xy: string): string | undefined {
  const m = new RegExp(`\\x00(${xy.replace('.', '\\.')}\\.\\d+)\\x00`).exec(binary.toString('latin1'));
  return m?.[1];
}
