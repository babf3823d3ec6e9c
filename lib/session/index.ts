// A session: one image attached, its root mounted in a private mount and PID namespace, and for
// chroot sessions /proc, /sys, /dev, /run, /tmp, the workspace, resolv.conf, policy-rc.d and a
// qemu binfmt entry set up, each with its undo registered the moment it is made. The rest of
// imgbuild runs commands in the image through a Session; kept mounts (imgbuild mount) and image
// facts (imgbuild inspect) are sessions' relatives and live here too.
export * from './session.js';
export { openSession, withSession } from './open.js';
export { detectRoot } from './root.js';
export { umountIn } from './mounts.js';
export type { Bind, BindGroup } from './bind-group.js';
export { type BootMount, bootMountpoint } from './boot.js';
export { hostResolvConf } from './chroot-files.js';
export * from './inspect.js';
export * from './kept.js';
