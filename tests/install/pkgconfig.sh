#!/usr/bin/env bash
# What a user of libtkvclient does after `meson install`: ask pkg-config for
# the flags, build the README's library example with them (shared and
# static), and check the header's version macros against the project's.
# The pkg-config search path holds only the installed tkvclient.pc, as on a
# machine without msgpack's .pc file: the library must need nothing else.
# Usage: pkgconfig.sh BUILD_DIR SOURCE_DIR CC VERSION [SANITIZE]
set -euo pipefail
build=$1 src=$2 cc=$3 version=$4 sanitize=${5:-none}
# A sanitized library links only into sanitized programs: nothing to learn.
if [ "$sanitize" != none ]; then
    echo "skipped: the library is built with -fsanitize=$sanitize"
    exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
pcfile=$(find "$tmp/root" -name tkvclient.pc)
[ -n "$pcfile" ] || { echo "FAIL: tkvclient.pc was not installed"; exit 1; }
if grep -n 'msgpack' "$pcfile"; then
    echo "FAIL: tkvclient.pc names msgpack, which the library does not use"
    exit 1
fi
export PKG_CONFIG_LIBDIR=$(dirname "$pcfile") PKG_CONFIG_PATH= PKG_CONFIG_SYSROOT_DIR="$tmp/root"
for mode in "" --static; do
    flags=$(pkg-config $mode --cflags --libs tkvclient) ||
        { echo "FAIL: pkg-config $mode --libs tkvclient"; exit 1; }
    # shellcheck disable=SC2086
    "$cc" -std=c11 -o "$tmp/history$mode" "$src/client/examples/history.c" $flags
done
libdir=$(dirname "$(dirname "$pcfile")")
"$cc" -std=c11 -o "$tmp/history-static" "$src/client/examples/history.c" \
    -I"$(dirname "$(find "$tmp/root" -path '*/tkv/client.h')")/.." "$libdir/libtkvclient.a"

# The async example against the installed async.h and libev adapter; libev
# is the program's dependency, not the library's.
# shellcheck disable=SC2046
"$cc" -std=c11 -o "$tmp/async" "$src/client/examples/async_libev.c" \
    $(pkg-config --cflags --libs tkvclient) -lev ||
    { echo "FAIL: the async example does not build against the installed headers"; exit 1; }

# Both installed libraries define the public API and nothing else: every
# global symbol is a function the headers declare.
api=$(cat "$src/client/include/tkv/client.h" "$src/client/include/tkv/async.h" |
      grep -o 'TKV_API [^(]*(' |
      grep -o 'tkv_[a-z_0-9]*' | sort -u)
for lib in "$libdir/libtkvclient.a" "$libdir/libtkvclient.so"; do
    case $lib in
    *.a) syms=$(nm -g --defined-only "$lib" | awk 'NF == 3 { print $3 }' | sort -u) ;;
    *) syms=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | sort -u) ;;
    esac
    extra=$(comm -23 <(echo "$syms") <(echo "$api"))
    if [ -n "$extra" ]; then
        echo "FAIL: $(basename "$lib") defines symbols that are not the API:" $extra
        exit 1
    fi
done

cat > "$tmp/v.c" <<'C'
#include <stdio.h>
#include <tkv/client.h>
int main(void)
{
    printf("%d.%d.%d\n", TKV_CLIENT_VERSION_MAJOR, TKV_CLIENT_VERSION_MINOR,
           TKV_CLIENT_VERSION_PATCH);
    return 0;
}
C
"$cc" -std=c11 -o "$tmp/v" "$tmp/v.c" $(pkg-config --cflags tkvclient)
got=$("$tmp/v")
if [ "$got" != "$version" ]; then
    echo "FAIL: tkv/client.h says version $got, the project is $version"
    exit 1
fi
echo "1 passed, 0 failed"
