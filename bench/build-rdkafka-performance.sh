#!/usr/bin/env bash
# Builds librdkafka's own load generator, rdkafka_performance, from the
# librdkafka sources vendored in the `rdkafka-sys` crate, and puts it at
# bench/.bin/rdkafka_performance (ignored by git), where bench/run.py finds it,
# and builds bench/latency.c on the same library into bench/.bin/latency.
#
# Needs cargo (to fetch the crate), gcc, make, and the zlib/OpenSSL headers
# (Debian: zlib1g-dev libssl-dev). Optional features (SASL/GSSAPI, zstd,
# curl) are left out: the benchmark needs none of them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
version="${RDKAFKA_SYS_VERSION:-4.10.0+2.12.1}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# A throwaway cargo project whose only job is to download the crate.
mkdir -p "$work/fetch/src"
cat > "$work/fetch/Cargo.toml" <<TOML
[package]
name = "fetch-rdkafka-sys"
version = "0.0.0"
edition = "2021"
[dependencies]
rdkafka-sys = "=$version"
TOML
echo 'fn main() {}' > "$work/fetch/src/main.rs"
(cd "$work/fetch" && cargo fetch --quiet)
src="$(find "${CARGO_HOME:-$HOME/.cargo}/registry/src" -maxdepth 2 -type d -name "rdkafka-sys-$version" | head -n1)"
[ -n "$src" ] || { echo "rdkafka-sys $version not found after cargo fetch" >&2; exit 1; }

cp -r "$src/librdkafka" "$work/librdkafka"
cd "$work/librdkafka"
./configure --disable-sasl --disable-gssapi --disable-zstd --disable-lz4-ext --disable-curl >"$work/configure.log" 2>&1 \
    || { tail -20 "$work/configure.log" >&2; exit 1; }
make -j"$(nproc)" libs >"$work/make.log" 2>&1 || { tail -20 "$work/make.log" >&2; exit 1; }
make -C examples rdkafka_performance >"$work/examples.log" 2>&1 || { tail -20 "$work/examples.log" >&2; exit 1; }
mkdir -p "$here/.bin"
cp examples/rdkafka_performance "$here/.bin/rdkafka_performance"
# bench/latency.c, the paced latency probe, on the same static librdkafka
# and the libraries its configure step chose.
libs="$(sed -n 's/^LIBS+=//p' Makefile.config | tr '\n' ' ')"
# shellcheck disable=SC2086
gcc -O2 -Wall -I src -o "$here/.bin/latency" "$here/latency.c" src/librdkafka.a $libs -lpthread \
    || { echo "building bench/latency.c failed" >&2; exit 1; }
echo "built $here/.bin/rdkafka_performance and $here/.bin/latency (librdkafka from rdkafka-sys $version)"
