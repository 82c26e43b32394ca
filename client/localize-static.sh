#!/bin/sh
# Builds the installed libtkvclient.a from the library's objects so that it
# defines only the public API: every object is linked into one (ld -r), then
# the symbols the sources mark hidden (everything without TKV_API) are made
# local. Otherwise internal names (tkv_buf_*, cl_*) would be global in a
# user's program, as they are not in libtkvclient.so.
# Usage: localize-static.sh OUT.a IN.a...
set -eu
out=$1
shift
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
ld -r -o "$tmp/tkvclient.o" --whole-archive "$@"
objcopy --localize-hidden "$tmp/tkvclient.o"
rm -f "$out"
ar rcs "$out" "$tmp/tkvclient.o"
