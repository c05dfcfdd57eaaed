#!/bin/sh
# contrib/debian/build.sh TARBALL [OUTDIR] - the Debian package of edgekv, built from a
# `make dist` tarball (a clean tree, as a package is built): unpacked in a scratch directory,
# contrib/debian copied to debian/, dpkg-buildpackage -b there, then lintian on the package
# (an error fails the build). The .deb
# lands in OUTDIR (default .), the build's log in OUTDIR/deb-build.log. `make deb` runs it.
# Needs dpkg-dev, debhelper and lintian, and the Build-Depends of contrib/debian/control.
set -eu
tarball=$1
out=$(cd "${2:-.}" && pwd)
work=$(mktemp -d "${TMPDIR:-/tmp}/edgekv-deb.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

tar -C "$work" -xzf "$tarball"
src=$(find "$work" -mindepth 1 -maxdepth 1 -type d -name 'edgekv-*')
cp -R "$src/contrib/debian" "$src/debian"
jobs=$(nproc 2>/dev/null || echo 1)
if ! (cd "$src" && DEB_BUILD_OPTIONS="${DEB_BUILD_OPTIONS:-} parallel=$jobs" \
        dpkg-buildpackage -b -us -uc) >"$out/deb-build.log" 2>&1; then
    tail -n 40 "$out/deb-build.log" >&2
    echo "dpkg-buildpackage failed: see $out/deb-build.log" >&2
    exit 1
fi
rm -f "$out"/edgekv_*.deb
cp "$work"/edgekv_*.deb "$out"/
deb=$(ls "$out"/edgekv_*.deb)
echo "built $deb"
lintian --fail-on error --info "$deb"
