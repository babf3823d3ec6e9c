// Every verb's help ends with an example or two and the exit codes, the same for all verbs (run
// also passes its command's own code on).
import type { Argv } from 'yargs';

export const exitCodes = 'Exit codes: 0 ok, 1 a step failed, 2 usage, 3 precondition (bad input or host), 4 cleanup incomplete (run imgbuild recover), 130 interrupted.';

const examples: Record<string, [string, string][]> = {
  inspect: [['$0 inspect rpi.img', 'partitions, arch, OS, Python, glibc and the wheel tag'], ['$0 inspect pynq_z2_v3.0.1.zip --json', 'an image as it ships, as JSON']],
  run: [['$0 run rpi.img -- python3 -c "import sys; print(sys.version)"', 'one command in the image, the image unchanged'], ['$0 run rpi.img --rw -- apt-get install -y libyaml-0-2', 'write into the image']],
  shell: [['$0 shell rpi.img', 'a shell in the image under a throwaway layer'], ['$0 shell rpi.img --workspace ./src', 'with ./src at /workspace']],
  mount: [['$0 mount rpi.img /mnt/rpi', 'the root (and boot) for work by hand'], ['$0 mount rpi.img /mnt/rpi --ro --json', 'read-only; what was mounted, as JSON']],
  umount: [['$0 umount /mnt/rpi', 'undo an imgbuild mount']],
  grow: [['$0 grow rpi.img +1G', 'one more GiB in the root filesystem'], ['$0 grow rpi.img 8G', '8 GiB in total']],
  recover: [['$0 recover --dry-run', 'what sessions that died left behind'], ['$0 recover', 'undo it']],
  doctor: [['$0 doctor', 'what this host can do (probes, undone at once)'], ['$0 doctor --no-probe --json', 'read only, as JSON']],
  cache: [['$0 cache', 'the cache and its sizes'], ['$0 cache pip work --clear', 'empty two parts']],
  sample: [['$0 sample --arch armhf', 'a bookworm armhf sample image'], ['$0 sample --arch aarch64 --suite trixie', 'another Debian release']],
  targets: [['$0 targets --long', 'every recipe with its version table']],
  faults: [['IMGBUILD_FAULT=build:compile:kill9 $0 rpi.img -t local:./x', 'kill imgbuild at a named step (tests)']],
};

/** The command module with its examples and the exit codes in its help. */
export function withHelp<M extends { builder?: (y: Argv) => Argv }>(name: string, mod: M): M {
  return {
    ...mod,
    builder: (y: Argv) => {
      let out = mod.builder ? mod.builder(y) : y;
      for (const [cmd, what] of examples[name] ?? []) out = out.example(cmd, what);
      return out.epilog(name === 'run' ? `${exitCodes} Otherwise run exits with the command's own code.` : exitCodes);
    },
  };
}
