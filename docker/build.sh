#!/usr/bin/env bash
# Builds the wharf Docker image from this checkout: docker/build.sh [TAG]
# (default wharf:dev). Uses $WHARF_BIN when set, else builds the release binary.
# The image is FROM scratch, holding the binary, the shared libraries `ldd`
# lists for it, a statically linked busybox (a shell and its tools, for the
# start scripts of testcontainers' KafkaContainer; $BUSYBOX, else the
# busybox on PATH, else /bin/busybox), and empty /data and /tmp, so no base
# image is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
tag="${1:-wharf:dev}"
busybox="${BUSYBOX:-$(command -v busybox || echo /bin/busybox)}"
# A static busybox runs without the libraries the image lacks; ldd fails
# on it ("not a dynamic executable").
if [ ! -x "$busybox" ] || ldd "$busybox" >/dev/null 2>&1; then
    echo "docker/build.sh: needs a statically linked busybox ($busybox is missing or dynamically linked)." >&2
    echo "On Debian or Ubuntu: apt-get install busybox-static (or set BUSYBOX=/path/to/static/busybox)." >&2
    exit 1
fi
bin="${WHARF_BIN:-}"
if [ -z "$bin" ]; then
    cargo build --release --bin wharf
    bin="${CARGO_TARGET_DIR:-target}/release/wharf"
fi
ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
mkdir -p "$ctx/rootfs/bin" "$ctx/rootfs/data" "$ctx/rootfs/tmp" "$ctx/rootfs/etc/wharf" \
    "$ctx/rootfs/etc/kafka/docker"
chmod 1777 "$ctx/rootfs/tmp"
cp docker/server.properties "$ctx/rootfs/etc/wharf/server.properties"
# The apache/kafka image's start script, which testcontainers runs.
cp docker/run "$ctx/rootfs/etc/kafka/docker/run"
# busybox and a link per applet (sh, sleep, [, ...); /bin/bash is a script
# for busybox's shell (busybox has no bash applet).
cp "$busybox" "$ctx/rootfs/bin/busybox"
"$busybox" --list | while read -r applet; do
    case "$applet" in
        busybox | bash | */*) ;;
        *) ln -s busybox "$ctx/rootfs/bin/$applet" ;;
    esac
done
cp docker/bash "$ctx/rootfs/bin/bash"
chmod 0755 "$ctx/rootfs/etc/kafka/docker/run" "$ctx/rootfs/bin/bash"
# The release profile keeps line tables for profiling; the image needs none.
if command -v strip >/dev/null 2>&1; then
    strip --strip-debug -o "$ctx/rootfs/bin/wharf" "$bin"
else
    cp "$bin" "$ctx/rootfs/bin/wharf"
fi
# Kafka's tool names, with and without .sh, run the same binary as those
# tools (docker exec CONTAINER kafka-topics.sh --list).
for tool in kafka-topics kafka-console-producer kafka-console-consumer \
    kafka-consumer-groups kafka-configs kafka-acls; do
    ln -s wharf "$ctx/rootfs/bin/$tool"
    ln -s wharf "$ctx/rootfs/bin/$tool.sh"
done
# Lines look like "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or,
# for the loader, "/lib64/ld-linux-x86-64.so.2 (0x...)".
ldd "$bin" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}' |
    while read -r lib; do cp -L --parents "$lib" "$ctx/rootfs/"; done
cp docker/Dockerfile "$ctx/Dockerfile"
docker build --quiet -t "$tag" "$ctx"
