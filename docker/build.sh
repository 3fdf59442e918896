#!/usr/bin/env bash
# Builds the wharf Docker image from this checkout: docker/build.sh [TAG]
# (default wharf:dev). Uses $WHARF_BIN when set, else builds the release binary.
# The image is FROM scratch, holding the binary, the shared libraries `ldd`
# lists for it, and empty /data and /tmp, so no base image is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-wharf:dev}"
bin="${WHARF_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --bin wharf
    bin="${CARGO_TARGET_DIR:-target}/release/wharf"
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/data" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/wharf"
cp docker/server.properties "$ctx/rootfs/etc/wharf/server.properties"
# The release profile keeps line tables for profiling; the image needs none.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$ctx/rootfs/bin/wharf" "$bin"
else
    cp "$bin" "$ctx/rootfs/bin/wharf"
fi
# Kafka's tool names, with and without .sh, run the same binary as those
# tools (docker exec CONTAINER kafka-topics.sh --list).
for tool in kafka-topics kafka-console-producer kafka-console-consumer \
    kafka-consumer-groups kafka-configs; do
    ln -s wharf "$ctx/rootfs/bin/$tool"
    ln -s wharf "$ctx/rootfs/bin/$tool.sh"
done
# Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or,
# for the loader, "/lib64/ld-linux-x86-64.so.2 (0x...)".
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
    while read -r lib; do cp -L --parents "$lib" "$ctx/rootfs/"; done
cp docker/Dockerfile "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx"
