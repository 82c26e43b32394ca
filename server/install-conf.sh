#!/bin/sh
# install-conf.sh SYSCONFDIR EXAMPLE - meson's install script for tkvd's
# default configuration: installs EXAMPLE as SYSCONFDIR/tkv/tkvd.conf
# (under $DESTDIR) unless a file is there already, so that installing again
# never overwrites an operator's settings.
set -eu
dest="${DESTDIR:-}$1/tkv/tkvd.conf"
if [ -e "$dest" ]; then
    echo "install-conf: keeping $dest (the example is in share/doc/tkv)"
    exit 0
fi
mkdir -p "$(dirname "$dest")"
cp "$2" "$dest"
chmod 0644 "$dest"
echo "Installing $2 to $dest"
