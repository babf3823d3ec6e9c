#!/usr/bin/env bash
# Node >= 22.12 for imgbuild, the step of scripts/setup-host.sh that a stock host needs most (Debian
# 12 ships Node 18, Ubuntu 22.04 Node 12): the system's node when it is new enough; else the
# distribution's nodejs when its candidate is; else the npm registry's node-linux-ARCH package (the
# official binary inside a registry package) under /opt/imgbuild/node, which scripts/node-env.sh
# and bin/imgbuild put first on PATH. npm fetches it, so apt's npm comes first if needed.
# Run as root. test/integration/stock-host.ts runs it in a stock Debian 12 tree.
set -euo pipefail
cd "$(dirname "$0")/.."

. scripts/node-env.sh
if ! imgbuild_node_ok node; then
  candidate() { apt-cache policy nodejs 2>/dev/null | awk '/Candidate:/ {print $2}' | sed 's/^[0-9]*://; s/[-~+].*//'; }
  cand=$(candidate)
  # No package lists yet (a fresh install, a container): read them once.
  if [ -z "$cand" ] || [ "$cand" = "(none)" ]; then apt-get update -qq >/dev/null 2>&1 || true; cand=$(candidate); fi
  if [ -n "$cand" ] && [ "$cand" != "(none)" ] && dpkg --compare-versions "$cand" ge 22.12; then
    echo "setup-node: installing the distribution's nodejs $cand"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    command -v npm >/dev/null 2>&1 || { echo "setup-node: installing npm (to fetch Node 22)"; DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends npm >/dev/null; }
    case "$(uname -m)" in x86_64) narch=x64 ;; aarch64) narch=arm64 ;; *) echo "setup-node: no Node 22 package for $(uname -m): install Node >= 22.12 yourself" >&2; exit 3 ;; esac
    echo "setup-node: Node >= 22.12 is needed (found $(node --version 2>/dev/null || echo none)); installing node-linux-$narch@22 from the npm registry under $imgbuild_node_dir"
    tmp=$(mktemp -d)
    (cd "$tmp" && npm pack --silent --loglevel=error "node-linux-$narch@22" >/dev/null && tar -xzf node-linux-"$narch"-*.tgz)
    rm -rf "$imgbuild_node_dir.new" && mkdir -p "$imgbuild_node_dir.new/bin"
    install -m 0755 "$tmp/package/bin/node" "$imgbuild_node_dir.new/bin/node"
    cp "$tmp/package/LICENSE" "$imgbuild_node_dir.new/"
    rm -rf "$tmp" "$imgbuild_node_dir" && mv "$imgbuild_node_dir.new" "$imgbuild_node_dir"
    # npm and npx beside it, so everything that looks for them next to node finds them.
    npm_cli=$(readlink -f "$(command -v npm)")
    ln -s "$npm_cli" "$imgbuild_node_dir/bin/npm"
    ln -s "$(dirname "$npm_cli")/npx-cli.js" "$imgbuild_node_dir/bin/npx"
  fi
  . scripts/node-env.sh
  imgbuild_node_ok node || { echo "setup-node: still no Node >= 22.12 (found $(node --version 2>/dev/null || echo none))" >&2; exit 3; }
fi
echo "setup-node: node $(node --version) ($(command -v node))"
