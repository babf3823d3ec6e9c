// Image tools: work on a board image as a whole rather than inside it. `imgbuild grow IMAGE +SIZE`
// makes room in a tightly sized image for --persist builds: the image file, its last partition
// and the ext2/3/4 filesystem in it grow together, under the image's lock, with every loop device
// journaled so `imgbuild recover` can finish after kill -9 (growing the file and the partition
// table is not undone on failure: both are harmless to a filesystem that has not grown yet, and
// the next grow finishes the job). Sample images are small SD-card images (mmdebstrap) for the
// demo and the tests, built once per machine and cached under the cache directory.
export * from './grow-plan.js';
export * from './grow.js';
export * from './sample.js';
