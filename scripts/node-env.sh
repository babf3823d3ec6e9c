# Sourced by the scripts after setup-host: put the Node that setup-host chose first on PATH (the
# system's when it is >= 22.12, else the one it installed under /opt/imgbuild/node).
imgbuild_node_dir=/opt/imgbuild/node
imgbuild_node_ok() { "$1" -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) ? 0 : 1)' 2>/dev/null; }
if ! { command -v node >/dev/null 2>&1 && imgbuild_node_ok node; } && [ -x "$imgbuild_node_dir/bin/node" ]; then
  export PATH="$imgbuild_node_dir/bin:$PATH"
fi
