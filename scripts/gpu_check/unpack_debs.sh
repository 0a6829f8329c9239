#!/usr/bin/env bash
# Unpack the .deb files of scripts/gpu_check/fetch_debs.sh into a private root, without root
# and without touching the system, and write ROOT/env.sh, which points pkg-config (and with it
# meson) there:
#
#   scripts/gpu_check/unpack_debs.sh DEBS_DIR ROOT && . ROOT/env.sh
#
# What it mends after dpkg -x, since no maintainer script runs: links to absolute paths point
# into ROOT; hdf5.pc and openblas.pc, which Debian makes through update-alternatives, are made
# from hdf5-serial.pc and openblas-pthread's openblas.pc; every .pc file's /usr becomes ROOT/usr,
# and its Libs carry an rpath (DT_RPATH, so the libraries these load, HDF5's libcurl say, are
# found too) to ROOT's library folders, so the programs built run without LD_LIBRARY_PATH.
set -euo pipefail

DEBS=${1:?usage: unpack_debs.sh DEBS_DIR ROOT}
ROOT=${2:?usage: unpack_debs.sh DEBS_DIR ROOT}
case "$ROOT" in /*) ;; *) ROOT=$PWD/$ROOT ;; esac
ROOT=${ROOT%/}
# the root is emptied first: never a system folder
case "$ROOT" in "" | /usr | /usr/* | /lib* | /etc | /etc/* | /bin | /opt | /home | /root | /tmp | /var | /var/*)
    echo "unpack_debs.sh: will not unpack into '$ROOT'" >&2; exit 1 ;;
esac
ls "$DEBS"/*.deb >/dev/null 2>&1 || { echo "unpack_debs.sh: no .deb files in $DEBS" >&2; exit 1; }

rm -rf "$ROOT"
mkdir -p "$ROOT/bin"
for deb in "$DEBS"/*.deb; do
    if command -v dpkg-deb >/dev/null; then
        dpkg-deb -x "$deb" "$ROOT"
    else # ar and tar alone: a .deb is an ar archive holding data.tar.{xz,zst,gz}; tar reads
         # the compression from the file (not from a pipe)
        member=$(ar t "$deb" | grep '^data\.tar') &&
            (cd "$ROOT" && ar x "$deb" "$member" && tar -xf "$member" && rm -f "$member") ||
            { echo "unpack_debs.sh: cannot unpack $deb (no dpkg-deb; ar/tar failed)" >&2; exit 1; }
    fi
done

# merged /usr: Debian 12's packages put some libraries in /lib
LIBDIRS=()
for d in usr/lib/x86_64-linux-gnu lib/x86_64-linux-gnu usr/lib/x86_64-linux-gnu/openblas-pthread \
         usr/lib/x86_64-linux-gnu/hdf5/serial; do
    [ -d "$ROOT/$d" ] && LIBDIRS+=("$ROOT/$d")
done
find_lib() { local d; for d in "${LIBDIRS[@]}"; do [ -e "$d/$1" ] && { echo "$d/$1"; return 0; }; done; return 1; }

# links to absolute paths (libz.so -> /lib/x86_64-linux-gnu/libz.so.1...) point into ROOT
while IFS= read -r link; do
    target=$(readlink "$link")
    if [ -e "$ROOT$target" ]; then
        ln -sfn "$ROOT$target" "$link"
    elif t=$(find_lib "$(basename "$target")"); then
        ln -sfn "$t" "$link"
    fi
done < <(find "$ROOT" -type l -lname '/*')

PC=$ROOT/usr/lib/x86_64-linux-gnu/pkgconfig
[ -f "$PC/hdf5-serial.pc" ] && cp "$PC/hdf5-serial.pc" "$PC/hdf5.pc"
[ -f "$ROOT/usr/lib/x86_64-linux-gnu/openblas-pthread/pkgconfig/openblas.pc" ] &&
    cp "$ROOT/usr/lib/x86_64-linux-gnu/openblas-pthread/pkgconfig/openblas.pc" "$PC/openblas.pc"
rpath=$(IFS=:; echo "${LIBDIRS[*]}")
while IFS= read -r pc; do
    sed -i -e "s|=/usr|=$ROOT/usr|g" -e "s| -I/usr| -I$ROOT/usr|g" -e "s| -L/usr| -L$ROOT/usr|g" \
        -e "s|^Libs:|Libs: -Wl,--disable-new-dtags -Wl,-rpath,$rpath|" "$pc"
done < <(find "$ROOT" -name '*.pc' -type f)

# pkg-config itself, when the machine has none (the wrapper finds libpkgconf in ROOT)
cat >"$ROOT/bin/pkg-config" <<EOF
#!/bin/sh
LD_LIBRARY_PATH=$ROOT/usr/lib/x86_64-linux-gnu\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH} exec $ROOT/usr/bin/pkgconf "\$@"
EOF
chmod +x "$ROOT/bin/pkg-config"

cat >"$ROOT/env.sh" <<EOF
# written by scripts/gpu_check/unpack_debs.sh: the unpacked libraries before the system's
export PKG_CONFIG_PATH=$PC:$ROOT/usr/share/pkgconfig\${PKG_CONFIG_PATH:+:\$PKG_CONFIG_PATH}
export PKG_CONFIG=\${PKG_CONFIG:-\$(command -v pkg-config || echo $ROOT/bin/pkg-config)}
EOF
n=$(ls "$DEBS"/*.deb | wc -l)
# what was unpacked, for scripts/gpu_check.sh's report: the count and fetch_debs.sh's SOURCE line
printf '%s debs from %s (%s)\n' "$n" "$(cd "$DEBS" && pwd)" "$(head -1 "$DEBS/SOURCE" 2>/dev/null || echo 'no SOURCE file')" >"$ROOT/SOURCE"
echo "unpack_debs.sh: $n packages into $ROOT"
