// dpkg's status file (/var/lib/dpkg/status): which packages are installed, at which version.

/** Installed packages (Status: install ok installed) and their versions, from a dpkg status file's text. */
export function installedPackages(status: string): Map<string, string> {
  const found = new Map<string, string>();
  for (const stanza of status.split(/\n\s*\n/)) {
    const field = (name: string) => new RegExp(`^${name}:\\s*(.+)$`, 'm').exec(stanza)?.[1]?.trim();
    const pkg = field('Package');
    const version = field('Version');
    if (pkg && version && field('Status') === 'install ok installed' && !found.has(pkg)) found.set(pkg, version);
  }
  return found;
}
