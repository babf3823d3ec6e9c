// Wheels: their names and tags, the checks that a wheel loads on the board (tags, ELF machines,
// libraries, symbol versions), the content-addressed wheel cache and its key, the ZIP writer that
// deflates a wheel natively, and manifest.json. Pure or host-side file work: nothing here runs in
// the image.
export * from './names.js';
export { type WheelElf, findLibrary, libraryDirs, wheelElves } from './libraries.js';
export * from './verify.js';
export * from './modules.js';
export * from './image-identity.js';
export * from './source-fingerprint.js';
export * from './cache-key.js';
export * from './cache.js';
export * from './deflate.js';
export * from './manifest.js';
