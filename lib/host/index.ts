// One host resource a file: loop devices, the four ways to attach partitions (kpartx maps,
// partscan, partx, offset loops), binfmt_misc entries, memory cgroups, the session namespace and
// its holder, locks, what the kernel can do, image files, paths resolved inside an untrusted
// root, removal that never crosses a mount, the undo of each journaled change, and the verbs
// that look after the host as a whole (recover, doctor, the cache directory).
export * from './attach.js';
export * from './binfmt.js';
export * from './cache-dir.js';
export * from './capabilities.js';
export * from './cgroup.js';
export * from './dm.js';
export * from './doctor.js';
export * from './image.js';
export * from './lock.js';
export * from './loop.js';
export * from './namespace.js';
export * from './recover.js';
export * from './safe-path.js';
export * from './safe-remove.js';
export * from './undoers.js';
