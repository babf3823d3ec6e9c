// Pure: which options an imgbuild verb has, read from its yargs --help, so the benchmark measures
// whatever this checkout supports (accel modes, wheel-cache bypass) and says what it skipped.

export interface HelpOption {
  name: string;
  choices?: string[];
  text: string;
}

export function parseHelpOptions(help: string): Map<string, HelpOption> {
  const options = new Map<string, HelpOption>();
  let current: HelpOption | undefined;
  for (const line of help.split('\n')) {
    const start = /^ {2}(?:-\w, | {4})--([a-z][\w-]*)/.exec(line);
    if (start) {
      current = { name: start[1]!, text: line };
      options.set(current.name, current);
    } else if (current && /^\s{4,}\S/.test(line)) {
      current.text += `\n${line}`;
    } else {
      current = undefined;
    }
  }
  for (const o of options.values()) {
    const m = /\[choices: ([^\]]*)\]/.exec(o.text);
    if (m) o.choices = [...m[1]!.matchAll(/"([^"]*)"/g)].map((x) => x[1]!);
  }
  return options;
}

export interface Capabilities {
  /** Modes `run` takes for --accel (besides auto and none), e.g. cross, distcc. */
  runAccel: string[];
  /** Whether `run`/`build` have --accel at all (else emulation is the only mode). */
  runHasAccel: boolean;
  buildHasAccel: boolean;
  buildAccel: string[];
  /** How a build bypasses the wheel cache, if it can. */
  noWheelCache?: string;
  distccHosts: boolean;
  /** `run` can turn the host's ccache off in accel modes (--no-ccache). */
  runCcache: boolean;
}

/** The interface the accel work promised, when --accel lists no choices. */
const promisedModes = ['auto', 'cross', 'none'];

export function capabilities(runHelp: string, buildHelp: string): Capabilities {
  const run = parseHelpOptions(runHelp);
  const build = parseHelpOptions(buildHelp);
  const modes = (o: HelpOption | undefined) => (o ? (o.choices ?? promisedModes).filter((m) => m !== 'auto' && m !== 'none') : []);
  // yargs shows a boolean --wheel-cache (default true) that --no-wheel-cache turns off.
  const bypass = build.has('wheel-cache') ? 'no-wheel-cache' : ['no-wheel-cache', 'no-cache', 'rebuild', 'force'].find((n) => build.has(n));
  return {
    runHasAccel: run.has('accel'),
    runAccel: modes(run.get('accel')),
    buildHasAccel: build.has('accel'),
    buildAccel: modes(build.get('accel')),
    ...(bypass ? { noWheelCache: `--${bypass}` } : {}),
    distccHosts: run.has('distcc-hosts'),
    runCcache: run.has('ccache'),
  };
}
