# Sourced by tests/guest/run.sh and tests/guest/systemd/run.sh: fetches a
# Debian kernel and unpacks it once. The caller defines say and fail, and
# sets kcache (the cache directory) and keyring (debian-archive-keyring's
# file); needs curl, gpgv, xz and dpkg-deb.
#
#   fetch_kernel SUITE|FILE.deb   # sets kpkg, kdir, vmlinuz and kver
kmirror="${CTRMON_GUEST_MIRROR:-http://deb.debian.org/debian}"
download() { curl -fsSL --retry 3 --connect-timeout 30 -o "$2" "$1" || fail "download $1"; }

# Sets kpkg, kfile (the .deb's path on the mirror) and ksha (its SHA-256)
# for the kernel that suite $1's linux-image-amd64 depends on. Every file is
# checked along the chain InRelease (signed) -> Packages.xz -> .deb.
resolve_suite() {
    local suite="$1" d="$kcache/dists/$1" sha
    mkdir -p "$d"
    if [ -s "$d/kernel" ] && [ -n "$(find "$d/kernel" -mmin -1440)" ]; then
        read -r kpkg kfile ksha <"$d/kernel"
        return
    fi
    say "reading the $suite index from $kmirror"
    download "$kmirror/dists/$suite/InRelease" "$d/InRelease"
    gpgv --quiet --keyring "$keyring" --output "$d/Release" "$d/InRelease" 2>"$d/gpgv.log" ||
        fail "$kmirror/dists/$suite/InRelease: bad signature ($(tr '\n' ' ' <"$d/gpgv.log"))"
    sha="$(awk '/^SHA256:/ { s = 1; next } /^[^ ]/ { s = 0 } s && $3 == "main/binary-amd64/Packages.xz" { print $1 }' "$d/Release")"
    [ -n "$sha" ] || fail "$suite's Release lists no main/binary-amd64/Packages.xz"
    download "$kmirror/dists/$suite/main/binary-amd64/Packages.xz" "$d/Packages.xz"
    echo "$sha  $d/Packages.xz" | sha256sum -c --quiet >/dev/null 2>&1 ||
        fail "$suite's Packages.xz does not match its Release"
    # Stanzas are separated by blank lines; read the meta-package's
    # dependency, then that package's file and checksum.
    xz -dc "$d/Packages.xz" >"$d/Packages"
    kpkg="$(awk '
        /^Package: / { p = ($2 == "linux-image-amd64") }
        p && /^Depends: / { sub(/^Depends: /, ""); sub(/[ ,(].*/, ""); print; exit }' "$d/Packages")"
    case "$kpkg" in
    linux-image-*) ;;
    *) fail "$suite: linux-image-amd64 depends on no linux-image package (${kpkg:-none})" ;;
    esac
    read -r kfile ksha < <(awk -v want="$kpkg" '
        /^Package: / { p = ($2 == want) }
        p && /^Filename: / { f = $2 }
        p && /^SHA256: / { s = $2 }
        p && /^$/ { if (f != "" && s != "") { print f, s; exit } }
        END { if (p && f != "" && s != "") print f, s }' "$d/Packages") || true
    [ -n "${kfile:-}" ] && [ -n "${ksha:-}" ] || fail "$suite: no Filename/SHA256 for $kpkg"
    echo "$kpkg $kfile $ksha" >"$d/kernel"
    rm -f "$d/Packages.xz" "$d/Packages"
}

# Unpacks the .deb $1 into $kdir: the kernel (boot/) and its modules tree
# (lib/modules or usr/lib/modules, as modules/).
unpack_kernel() {
    rm -rf "$kdir" "$kdir.tmp"
    mkdir -p "$kdir.tmp" "$kdir"
    dpkg-deb -x "$1" "$kdir.tmp"
    mv "$kdir.tmp/boot" "$kdir/boot"
    for m in "$kdir.tmp/lib/modules" "$kdir.tmp/usr/lib/modules"; do
        [ -d "$m" ] || continue
        mkdir -p "$kdir/modules"
        mv "$m"/* "$kdir/modules/"
    done
    rm -rf "$kdir.tmp"
    ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1 || fail "$1 holds no boot/vmlinuz-*"
}

# Sets kdir to the unpacked kernel of $1 (a Debian suite, checked from its
# signed InRelease down to the .deb, or a .deb file), then vmlinuz and kver.
fetch_kernel() {
    case "$1" in
    *.deb)
        [ -f "$1" ] || fail "--kernel $1: no such file"
        kpkg="$(basename "$1" .deb)"
        kdir="$kcache/$kpkg"
        [ "$kdir/.from" -nt "$1" ] 2>/dev/null || { unpack_kernel "$1"; : >"$kdir/.from"; }
        ;;
    */* | "") fail "--kernel $1: a Debian suite (bullseye, bookworm, trixie) or a .deb file" ;;
    *)
        resolve_suite "$1"
        kdir="$kcache/$kpkg"
        if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
            say "downloading $kpkg ($kmirror/$kfile)"
            mkdir -p "$kcache/dl"
            deb="$kcache/dl/$kpkg.deb"
            download "$kmirror/$kfile" "$deb"
            echo "$ksha  $deb" | sha256sum -c --quiet >/dev/null 2>&1 ||
                fail "$kmirror/$kfile does not match the checksum in $1's Packages.xz"
            unpack_kernel "$deb"
            rm -f "$deb"
        fi
        ;;
    esac
    vmlinuz="$(ls "$kdir"/boot/vmlinuz-* | head -n 1)"
    kver="${vmlinuz##*/vmlinuz-}"
}
