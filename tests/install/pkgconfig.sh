#!/usr/bin/env bash
# What a user of libtkvclient does after `meson install`: ask pkg-config for
# the flags, build the README's library example with them (shared and
# static), and check the header's version macros against the project's.
# First, what an operator gets from the same install: tkvd, tkvctl,
# tkv-bench, the systemd unit, the man pages and the example config, which
# must name every flag the programs' --help lists.
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

fail() { echo "FAIL: $*"; exit 1; }

# The long flags a --help lists (--name at the start of an option's line).
help_flags() { "$@" --help | grep -oE '^ +(-[a-zA-Z], )?--[a-z][a-z0-9-]*' | grep -oE -- '--[a-z0-9-]+' | sort -u; }

# What an operator gets: the programs, the unit, the man pages (troff that
# man renders) and the example config, and both name every flag.
check_operator_files() {
    local f
    for f in bin/tkvd bin/tkvctl bin/tkv-bench; do
        [ -x "$root/$f" ] || fail "$f was not installed"
    done
    local unit="$root/lib/systemd/system/tkvd.service"
    [ -f "$unit" ] || fail "lib/systemd/system/tkvd.service was not installed"
    grep -qx 'Type=notify' "$unit" || fail "tkvd.service is not Type=notify"
    grep -q "^ExecStart=$prefix/bin/tkvd --config " "$unit" ||
        fail "tkvd.service does not start $prefix/bin/tkvd: $(grep ExecStart "$unit")"
    if command -v systemd-analyze >/dev/null; then
        # Only problems of the unit itself: the binary and the man page are
        # not where the unit names them (in $prefix) on this machine.
        local out
        out=$(systemd-analyze verify "$unit" 2>&1 | grep -v -e 'is not executable' -e "man tkvd" || true)
        [ -z "$out" ] || fail "systemd-analyze verify tkvd.service: $out"
    fi
    for f in man1/tkvd.1 man1/tkvctl.1 man1/tkv-bench.1 man3/libtkvclient.3; do
        local page="$root/share/man/$f"
        [ -s "$page" ] || fail "share/man/$f was not installed"
        grep -q '^\.TH ' "$page" || fail "share/man/$f is not troff"
        [ "$(MANWIDTH=80 man -l "$page" 2>/dev/null | wc -l)" -gt 20 ] ||
            fail "man -l share/man/$f renders next to nothing"
    done
    local example="$root/share/doc/tkv/tkvd.conf.example"
    [ -s "$example" ] || fail "share/doc/tkv/tkvd.conf.example was not installed"
    local conf
    conf="$tmp/root$(meson introspect "$build" --buildoptions | python3 -c '
import json, sys, os
o = {x["name"]: x["value"] for x in json.load(sys.stdin)}
print(os.path.join(o["prefix"], o["sysconfdir"]))')/tkv/tkvd.conf"
    cmp -s "$example" "$conf" || fail "etc/tkv/tkvd.conf (the unit's config) is not the example"
    # Installing again keeps an operator's settings.
    echo "port 7400" >>"$conf"
    meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
    grep -qx "port 7400" "$conf" || fail "a second meson install overwrote etc/tkv/tkvd.conf"
    local flag
    for flag in $(help_flags "$root/bin/tkvd"); do
        grep -qF -- "\fB$flag\fR" "$root/share/man/man1/tkvd.1" || fail "tkvd(1) lacks $flag"
        case $flag in --repair | --restore | --help | --version | --config) continue ;; esac
        grep -qE "^#${flag#--}( |$)" "$example" || fail "tkvd.conf.example lacks ${flag#--}"
    done
    for flag in $(help_flags "$root/bin/tkvctl"); do
        grep -qF -- "\fB$flag\fR" "$root/share/man/man1/tkvctl.1" || fail "tkvctl(1) lacks $flag"
    done
    local cmd
    for cmd in $("$root/bin/tkvctl" --help | sed -n '/^Commands:/,/^$/p' | awk 'NR > 1 && NF { print $1 }'); do
        grep -qF -- "\fB$cmd\fR" "$root/share/man/man1/tkvctl.1" || fail "tkvctl(1) lacks the command $cmd"
    done
    for flag in $(help_flags "$root/bin/tkv-bench"); do
        grep -qF -- "\fB$flag\fR" "$root/share/man/man1/tkv-bench.1" || fail "tkv-bench(1) lacks $flag"
    done
}

meson install -C "$build" --no-rebuild --quiet --destdir "$tmp/root" >/dev/null
prefix=$(meson introspect "$build" --buildoptions |
         python3 -c 'import json,sys; print([o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"][0])')
root="$tmp/root$prefix"
check_operator_files
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
