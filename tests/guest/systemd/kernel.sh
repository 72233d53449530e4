# Sourced by tests/guest/systemd/run.sh: unpacks the kernel Debian's
# linux-image-amd64 points at today into $work_cache (once) and sets
# $vmlinuz and $kver. The same steps as tests/guest/run.sh (apt-cache
# depends, apt-get download, dpkg-deb -x), kept apart from that script
# while it is being reworked; one shared helper is the intent.
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)"
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)"
fi
[ -n "$kpkg" ] || fail "cannot tell which kernel package linux-image-amd64 depends on"
kdir="$work_cache/$kpkg"
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
    say "downloading $kpkg"
    rm -rf "$kdir" "$work_cache/dl"
    mkdir -p "$work_cache/dl"
    (cd "$work_cache/dl" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null)
    mkdir -p "$kdir.tmp"
    dpkg-deb -x "$work_cache"/dl/"$kpkg"_*.deb "$kdir.tmp"
    mkdir -p "$kdir"
    mv "$kdir.tmp/boot" "$kdir/boot"
    for m in "$kdir.tmp/lib/modules" "$kdir.tmp/usr/lib/modules"; do
        [ -d "$m" ] && mv "$m" "$kdir/modules"
    done
    rm -rf "$kdir.tmp" "$work_cache/dl"
fi
vmlinuz="$(ls "$kdir"/boot/vmlinuz-* | head -n 1)"
kver="${vmlinuz##*/vmlinuz-}"
