// Parsers over bytes and tool output: ELF headers and dynamic sections, ZIP archives (wheels),
// partition tables and filesystem superblocks, /proc mountinfo, apt source files. They read what they are given
// (or a file, read-only) and return typed values: no process is started and nothing is written,
// so each is tested against captured real output.
export * from './apt-sources.js';
export * from './elf.js';
export * from './mountinfo.js';
export * from './partitions.js';
export * from './zip.js';
export * from './python-version.js';
export * from './dpkg-status.js';
