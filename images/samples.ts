// The bundled sample images: PYNQ-like SD-card images (FAT32 boot + ext4 root) with a Debian
// userland built by mmdebstrap from the host's own apt sources. Changing this list changes the
// cache key, so every machine rebuilds once.

export const samplePackages = [
  'python3',
  'python3-dev',
  'python3-setuptools',
  'python3-wheel',
  'python3-pip',
  'python3-venv',
  'gcc',
  'g++',
  'make',
  'libc6-dev',
  'ca-certificates',
  'iproute2',
  'procps',
];

export const sampleLayout = {
  /** Bytes. The boot partition starts at 4 MiB like Raspberry Pi OS images. */
  bootStart: 4 * 1024 * 1024,
  bootSize: 64 * 1024 * 1024,
  /** Free space left in the root filesystem beyond the tree. */
  rootSlack: 384 * 1024 * 1024,
  bootLabel: 'BOOT',
  rootLabel: 'rootfs',
  hostname: 'imgbuild-sample',
};

export const sampleBootFiles: Record<string, string> = {
  'config.txt': '# imgbuild sample image: not bootable, for building wheels only\narm_64bit=1\nenable_uart=1\n',
  'cmdline.txt': 'console=serial0,115200 root=PARTUUID=@PARTUUID@ rootfstype=ext4 rootwait\n',
  'README.txt': 'Sample image made by imgbuild (images/samples.ts).\n',
};
