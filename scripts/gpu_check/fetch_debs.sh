#!/usr/bin/env bash
# Download, on a machine with Debian 12's package archive (this project's development and CI
# machines), the .deb files that scripts/gpu_check.sh unpacks on a GPU machine that has no
# network: the build's libraries (HDF5, OpenBLAS, cJSON, PCRE2, utf8proc, zlib, cmocka), pkgconf,
# and the shared libraries they load in turn (HDF5's libcurl and its closure), so the check
# needs nothing from the GPU machine's own packages but a C compiler, nvcc, meson and ninja.
#
#   scripts/gpu_check/fetch_debs.sh            # into .gpu-debs/ (git ignores it; ~27 MB)
#   scripts/gpu_check/fetch_debs.sh DIR
#
# Then carry the folder to the GPU machine beside the checkout (device tool: carry
# [".gpu-debs"]) and run scripts/gpu_check.sh there: its setup part unpacks them with
# dpkg -x into BUILD.deps/ (no root, nothing installed system-wide) when pkg-config does not
# find the libraries (docs/CUDA.md, "Without a network").
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/../.."
DIR=${1:-.gpu-debs}

# The link-time packages (headers, .so links, .pc files) and, after them, every runtime
# library they pull in, less what any glibc system has (libc6, libgcc-s1, libstdc++6).
DEV=(pkgconf pkgconf-bin libpkgconf3 libhdf5-dev libaec-dev libopenblas-dev libopenblas-pthread-dev
     libcjson-dev libpcre2-dev libutf8proc-dev zlib1g-dev libcmocka-dev)
RUNTIME=(libhdf5-103-1 libhdf5-hl-100 libaec0 libsz2 libopenblas0-pthread libgfortran5 libquadmath0
         libcjson1 libpcre2-8-0 libutf8proc2 zlib1g libcmocka0 libcurl4 libbrotli1 libcom-err2
         libffi8 libgmp10 libgnutls30 libgssapi-krb5-2 libhogweed6 libidn2-0 libk5crypto3
         libkeyutils1 libkrb5-3 libkrb5support0 libldap-2.5-0 libnettle8 libnghttp2-14
         libp11-kit0 libpsl5 librtmp1 libsasl2-2 libssh2-1 libssl3 libtasn1-6 libunistring2
         libzstd1)

command -v apt-get >/dev/null || { echo "fetch_debs.sh: needs apt-get (Debian 12)" >&2; exit 1; }
[ "$(dpkg --print-architecture 2>/dev/null)" = amd64 ] ||
    { echo "fetch_debs.sh: the GPU machines are x86-64; this machine is $(dpkg --print-architecture)" >&2; exit 1; }
mkdir -p "$DIR"
rm -f "$DIR"/*.deb
(cd "$DIR" && apt-get download "${DEV[@]}" "${RUNTIME[@]}") >/dev/null ||
    { echo "fetch_debs.sh: apt-get download failed (run apt-get update; is this Debian 12?)" >&2; exit 1; }
n=$(ls "$DIR"/*.deb | wc -l)
want=$((${#DEV[@]} + ${#RUNTIME[@]}))
[ "$n" -eq "$want" ] || { echo "fetch_debs.sh: $n of $want packages in $DIR" >&2; exit 1; }
. /etc/os-release
echo "$PRETTY_NAME" >"$DIR/SOURCE"
echo "fetch_debs.sh: $n packages ($(du -sh "$DIR" | cut -f1)) from $PRETTY_NAME in $DIR"
