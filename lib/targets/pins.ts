// The recipes' pip pins that a build cannot do without. Offline, a pin the image's installed
// version misses is only a warning (the build goes on with what the image has), except these:
// each breaks the build itself, or makes a wheel that does not load.
const breaking: Record<string, string> = {
  'setuptools<60': 'setuptools 60 replaced the stdlib distutils that old setup.py files drive (torch < 1.11)',
  'pyyaml<6': 'PyYAML 6 made yaml.load\'s Loader mandatory, which old torch build scripts omit',
  'numpy<2': 'numpy 2 changed the C ABI: an extension built against it does not load with numpy 1',
  'Pillow<7': 'Pillow 7 removed PILLOW_VERSION, which torchvision up to 0.4 imports',
};

/** Why a pin cannot be waived, or undefined when the build only prefers it (numpy<1.24: tests). */
export function pinBreaks(pin: string): string | undefined {
  const p = pin.replace(/\s+/g, '');
  if (/^cmake>=/.test(p)) return `the project's CMakeLists asks for cmake ${/^cmake>=([\d.]+)/.exec(p)?.[1] ?? ''} or newer: an older one stops at configure`;
  return breaking[p];
}
