#!/bin/sh
# tests/deb.sh - the Debian package (contrib/debian, issue 14): `make deb` builds it from the
# distribution tarball with dpkg-buildpackage and lintian passes it (no errors); then its
# contents (dpkg-deb -c), control fields and conffiles are checked, and the binary extracted
# from it (dpkg-deb -x) runs: --version, and -t on the configuration it installs.
# From the build tree: sh tests/deb.sh. Needs dpkg-dev, debhelper and lintian (CI installs
# them; without them the test is skipped, exit 77, unless EKV_TESTS_REQUIRED is set).
set -u
srcdir=${srcdir:-$(dirname "$0")/..}
fail() { echo "FAIL: $*"; exit 1; }

for tool in dpkg-buildpackage dh lintian; do
    if ! command -v "$tool" >/dev/null 2>&1; then
        [ -n "${EKV_TESTS_REQUIRED:-}" ] && fail "$tool not found (apt-get install dpkg-dev debhelper lintian)"
        echo "SKIP: $tool not found"; exit 77
    fi
done
make -s deb >deb.out 2>&1 || { cat deb.out; fail "make deb"; }
deb=$(ls edgekv_*.deb 2>/dev/null | head -n 1)
[ -n "$deb" ] || fail "make deb made no .deb"
echo "package: $deb"
grep -E '^[EW]: ' deb.out && echo "(lintian: the above; errors would have failed make deb)"

contents=$(dpkg-deb -c "$deb") || fail "dpkg-deb -c"
for path in ./usr/bin/edgekv ./etc/edgekv/edgekv.conf ./lib/systemd/system/edgekv.service \
        ./usr/share/man/man8/edgekv.8.gz ./usr/share/doc/edgekv/examples/redis-origin.conf \
        ./usr/share/doc/edgekv/copyright ./usr/share/doc/edgekv/changelog.gz \
        ./usr/share/doc/edgekv/README.md.gz; do
    echo "$contents" | grep -q " $path\$" || fail "$deb lacks $path:
$contents"
done
# nothing of the build or the tests
echo "$contents" | grep -E 'check_|fuzz|\.a$|\.o$|/include/' && fail "$deb ships build or test files"

conffiles=$(dpkg-deb -I "$deb" conffiles) || fail "no conffiles"
[ "$(echo "$conffiles" | grep -c .)" = 1 ] && echo "$conffiles" | grep -qx /etc/edgekv/edgekv.conf ||
    fail "conffiles: $conffiles"
depends=$(dpkg-deb -f "$deb" Depends)
for lib in libc6 libevent libhiredis libjansson libssl3; do
    echo "$depends" | grep -q "$lib" || fail "Depends lacks $lib (dh_shlibdeps): $depends"
done
[ "$(dpkg-deb -f "$deb" Package)" = edgekv ] || fail "Package"
[ "$(dpkg-deb -f "$deb" Version)" = "$(sed -n 's/^edgekv (\(.*\)).*/\1/p;q' "$srcdir/contrib/debian/changelog")" ] ||
    fail "Version is not the changelog's"

x=$(mktemp -d); trap 'rm -rf "$x"' EXIT
dpkg-deb -x "$deb" "$x" || fail "dpkg-deb -x"
out=$("$x/usr/bin/edgekv" --version) || fail "--version"
echo "$out" | grep -q "^edgekv $(sed -n 's/^edgekv (\(.*\)).*/\1/p;q' "$srcdir/contrib/debian/changelog")" ||
    fail "--version says: $out"
"$x/usr/bin/edgekv" -t -c "$x/etc/edgekv/edgekv.conf" >t.out 2>&1 || { cat t.out; fail "-t on the installed configuration"; }
# the unit runs the installed binary on the installed configuration
grep -qx 'ExecStart=/usr/bin/edgekv -c /etc/edgekv/edgekv.conf' "$x/lib/systemd/system/edgekv.service" ||
    fail "the unit's ExecStart"
# a bad file is refused by the extracted binary, naming the line
printf 'listen 127.0.0.1:8080\nthreads lots\n' >bad.conf
"$x/usr/bin/edgekv" -t -c bad.conf >t.out 2>&1 && fail "-t accepted a bad file"
grep -q 'bad.conf:2' t.out || { cat t.out; fail "-t did not name bad.conf:2"; }
rm -f bad.conf t.out deb.out
echo "PASS: $deb"
