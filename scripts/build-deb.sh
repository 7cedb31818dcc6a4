#!/usr/bin/env bash
# Build the Debian package: ./scripts/build-deb.sh  ->  build/deb/mwan_<version>_<arch>.deb
#
# mwan and the pinned Python libraries of packaging/requirements.txt go into a
# private venv, /usr/lib/mwan, made from Debian's /usr/bin/python3 with
# --system-site-packages (python3-nftables and python3-systemd come from
# Debian).  The wheels are downloaded once into build/deb-cache and reused.
# Needs: /usr/bin/python3 (python3-venv), dpkg-deb, fakeroot, and the repo's .venv
# (scripts/setup.sh) for pip.  Output path on the last line of stdout.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PIP=(.venv/bin/python -m pip --disable-pip-version-check -q)
quiet() { "$@" 2> >(grep -v "^WARNING: Location '.*' is ignored" >&2); }
VERSION=$(.venv/bin/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
ARCH=$(dpkg --print-architecture)
PYVER=$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
OUT=build/deb
CACHE=build/deb-cache/wheels
STAGE=$OUT/stage
VENV=/usr/lib/mwan
SITE=$STAGE$VENV/lib/python$PYVER/site-packages
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

rm -rf "$STAGE" "$OUT"/mwan_*.deb "$OUT/wheel"
mkdir -p "$CACHE" "$STAGE/DEBIAN" "$OUT/wheel"

# 1. the pinned wheels: from the cache, else from PyPI into the cache
if ! "${PIP[@]}" download --no-index --find-links "$CACHE" --no-deps --only-binary=:all: \
        -r packaging/requirements.txt -d "$CACHE" 2>/dev/null; then
    quiet "${PIP[@]}" download --no-deps --only-binary=:all: -r packaging/requirements.txt -d "$CACHE"
fi
quiet "${PIP[@]}" wheel --no-deps --no-build-isolation -w "$OUT/wheel" . >/dev/null
rm -rf build/lib build/bdist.* mwan.egg-info/SOURCES.txt.orig

# 2. the private venv, then mwan and its libraries into it
/usr/bin/python3 -m venv --system-site-packages --without-pip "$STAGE$VENV"
rm -f "$STAGE$VENV"/bin/activate* "$STAGE$VENV"/bin/Activate.ps1
sed -i "s#$ROOT/$STAGE##g" "$STAGE$VENV/pyvenv.cfg"
rm -rf "$STAGE$VENV/lib64" "$STAGE$VENV/include"  # not needed by a venv that is only run
quiet "${PIP[@]}" install --no-index --no-deps --no-compile --find-links "$CACHE" --target "$SITE" \
    -r packaging/requirements.txt "$OUT"/wheel/mwan-*.whl
rm -rf "$SITE/bin"
find "$SITE" -name "*.so" -exec strip --strip-unneeded --remove-section=.comment {} +
find "$SITE" -name direct_url.json -delete
# library modules with a "#!/usr/bin/env python" line: the interpreter Debian has
grep -rlZ --include='*.py' -m1 '^#!.*python$' "$SITE" | xargs -0r sed -i '1s|^#!.*python$|#!/usr/bin/python3|'
find "$SITE" -name RECORD -delete  # lists paths of the build machine; pip does not need it to run

# 3. the command, the unit (from systemd/mwan.service, the one source), config, docs
install -D -m 0755 packaging/debian/mwan3 "$STAGE/usr/sbin/mwan3"
install -d "$STAGE/lib/systemd/system"
sed 's#/usr/local/bin/mwan3#/usr/sbin/mwan3#g' systemd/mwan.service \
    > "$STAGE/lib/systemd/system/mwan.service"
chmod 0644 "$STAGE/lib/systemd/system/mwan.service"
install -d "$STAGE/etc/config"
cat packaging/config-header mwan/data/mwan3.example > "$STAGE/etc/config/mwan3"
chmod 0644 "$STAGE/etc/config/mwan3"
install -m 0755 packaging/mwan3.user "$STAGE/etc/mwan3.user"
run_staged() { (cd / && PYTHONSAFEPATH=1 "$ROOT/$STAGE$VENV/bin/python3" -m "$@"); }
install -d "$STAGE/usr/share/man/man8" "$STAGE/usr/share/bash-completion/completions" \
    "$STAGE/usr/share/zsh/vendor-completions" "$STAGE/usr/share/doc/mwan"
run_staged mwan.cli.manpage | gzip -9n > "$STAGE/usr/share/man/man8/mwan3.8.gz"
run_staged mwan.cli.completion bash > "$STAGE/usr/share/bash-completion/completions/mwan3"
run_staged mwan.cli.completion zsh > "$STAGE/usr/share/zsh/vendor-completions/_mwan3"
install -m 0644 packaging/debian/copyright "$STAGE/usr/share/doc/mwan/copyright"
gzip -9n < README.md > "$STAGE/usr/share/doc/mwan/README.md.gz"
printf 'mwan (%s) unstable; urgency=medium\n\n  * Built from git %s.\n\n -- mwan developers <mwan@example.org>  %s\n' \
    "$VERSION" "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
    "$(date -u -R -d "@$SOURCE_DATE_EPOCH")" | gzip -9n > "$STAGE/usr/share/doc/mwan/changelog.gz"
install -d "$STAGE/usr/share/lintian/overrides"
install -m 0644 packaging/debian/lintian-overrides "$STAGE/usr/share/lintian/overrides/mwan"

# relative, as Debian wants in /usr (after the staged venv ran above)
ln -sfn ../../../bin/python3 "$STAGE$VENV/bin/python3"

# 4. DEBIAN/: control, maintainer scripts, conffiles, md5sums
for s in postinst prerm postrm; do install -m 0755 "packaging/debian/$s" "$STAGE/DEBIAN/$s"; done
printf '/etc/config/mwan3\n/etc/mwan3.user\n' > "$STAGE/DEBIAN/conffiles"
SIZE=$(du -sk --exclude=DEBIAN "$STAGE" | cut -f1)
sed -e "s/@VERSION@/$VERSION/" -e "s/@ARCH@/$ARCH/" -e "s/@SIZE@/$SIZE/" \
    packaging/debian/control.in > "$STAGE/DEBIAN/control"
(cd "$STAGE" && find . -path ./DEBIAN -prune -o -path ./etc -prune -o -type f -printf '%P\0' \
    | LC_ALL=C sort -z | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 "$STAGE/DEBIAN/md5sums" "$STAGE/DEBIAN/conffiles" "$STAGE/DEBIAN/control"
find "$STAGE" -exec touch -h -d "@$SOURCE_DATE_EPOCH" {} +
DEB="$OUT/mwan_${VERSION}_${ARCH}.deb"
fakeroot dpkg-deb --build -Zxz --root-owner-group "$STAGE" "$DEB" >/dev/null
echo "$DEB"
