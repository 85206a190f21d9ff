#!/usr/bin/env bash
# Cross-builds the addon for Linux targets on a Linux x86-64 machine and puts each binary in
# its platform package, npm/<platform>/zongzi.<platform>.node, where the release's
# `napi artifacts` puts it too.
#
#   bash scripts/platforms/cross-build.sh [TARGET...]
#       (default: aarch64-unknown-linux-gnu x86_64-unknown-linux-musl; the other Linux targets
#       build the same way)
#
# Needs: the Rust standard library of each target (`rustup target add`), and zig with
# cargo-zigbuild (`pip install ziglang cargo-zigbuild`, both from PyPI) as the C compiler and
# linker of the target (ring and lz4 have C code). glibc targets link against glibc 2.17, as
# napi-rs's release images do. musl targets are built as shared objects linking musl's libc
# dynamically (`-crt-static` off), which Node on Alpine needs to load them.
set -euo pipefail
cd "$(dirname "$0")/../.."

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(aarch64-unknown-linux-gnu x86_64-unknown-linux-musl)

command -v cargo-zigbuild >/dev/null || {
  echo "cargo-zigbuild is missing: pip install ziglang cargo-zigbuild" >&2
  exit 1
}

# The napi-rs name of a target (the suffix of its package and binary).
suffix() {
  case "$1" in
    x86_64-unknown-linux-gnu) echo linux-x64-gnu ;;
    x86_64-unknown-linux-musl) echo linux-x64-musl ;;
    aarch64-unknown-linux-gnu) echo linux-arm64-gnu ;;
    aarch64-unknown-linux-musl) echo linux-arm64-musl ;;
    *) echo "no Linux platform package for $1" >&2; return 1 ;;
  esac
}

target_dir=${CARGO_TARGET_DIR:-target}
for t in "${targets[@]}"; do
  s=$(suffix "$t")
  rustup target list --installed | grep -qx "$t" || rustup target add "$t"
  case "$t" in
    *-gnu) zig_target="$t.2.17"; flags="" ;;
    *-musl) zig_target="$t"; flags="-C target-feature=-crt-static" ;;
  esac
  echo "== $t → npm/$s" >&2
  # One target at a time: each is a full release build of the engine.
  RUSTFLAGS="$flags" cargo zigbuild --release --locked -p zongzi-node --target "$zig_target"
  cp "$target_dir/$t/release/libzongzi_node.so" "npm/$s/zongzi.$s.node"
done
