#!/usr/bin/env bash
# Runs the guest tests (every `tests/guest_*.rs`) in a cgroup v2-only Linux
# guest: Debian's kernel under qemu (TCG, no KVM needed), booted from an
# initramfs that holds busybox, the release test binaries and the ctrmon
# CLI at the paths they were built at, and tests/guest/init as PID 1.
#
#   tests/guest/run.sh [TEST-BINARY-ARGS...]     # e.g. a test name filter
#
# Installs what it needs with apt-get (qemu-system-x86, busybox-static,
# attr, cpio; the kernel package is downloaded and unpacked, not
# installed). Downloads are cached in target/guest/, so a rerun only
# rebuilds and boots. Fails when the guest does not boot, times out, runs no
# test, or any test fails; the guest's console (each test's output) is
# printed as it comes and saved in target/guest/console.log.
#
# Environment: CTRMON_GUEST_TIMEOUT (seconds for the whole guest, default
# 900), CTRMON_GUEST_BINARY_TIMEOUT (seconds per test binary, default 300).
set -euo pipefail
cd "$(dirname "$0")/../.."
root="$PWD"
work="$root/target/guest"
mkdir -p "$work/cache"

say() { echo "guest: $*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}

# --- tools -------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
# The static build: the guest has no libraries but the ones copied in.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v setfattr >/dev/null || missing+=(attr)
command -v cpio >/dev/null || missing+=(cpio)
command -v gzip >/dev/null || missing+=(gzip)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel ------------------------------------------------------------------
# The version Debian's meta-package points at today, unpacked once.
kpkg="$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)"
if [ -z "$kpkg" ]; then
    apt-get update -qq
    kpkg="$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-amd64\)$/\1/p' | head -n 1)"
fi
[ -n "$kpkg" ] || fail "cannot tell which kernel package linux-image-amd64 depends on"
kdir="$work/cache/$kpkg"
if ! ls "$kdir"/boot/vmlinuz-* >/dev/null 2>&1; then
    say "downloading $kpkg"
    rm -rf "$kdir" "$work/cache/dl"
    mkdir -p "$work/cache/dl"
    (cd "$work/cache/dl" && apt-get download -q -o APT::Sandbox::User=root "$kpkg" >/dev/null)
    mkdir -p "$kdir.tmp"
    dpkg-deb -x "$work"/cache/dl/"$kpkg"_*.deb "$kdir.tmp"
    # Keep the kernel and its modules (usr/lib on newer packages).
    mkdir -p "$kdir"
    mv "$kdir.tmp/boot" "$kdir/boot"
    for m in "$kdir.tmp/lib/modules" "$kdir.tmp/usr/lib/modules"; do
        [ -d "$m" ] && mv "$m" "$kdir/modules"
    done
    rm -rf "$kdir.tmp" "$work/cache/dl"
fi
vmlinuz="$(ls "$kdir"/boot/vmlinuz-* | head -n 1)"
kver="${vmlinuz##*/vmlinuz-}"

# --- binaries ----------------------------------------------------------------
say "building the guest tests (release)"
cargo test --release --no-run --message-format=json --test 'guest_*' >"$work/build.json"
# One JSON object per line; integration tests have kind ["test"], the CLI
# that they run (CARGO_BIN_EXE_ctrmon) kind ["bin"].
artifacts() {
    grep '"reason":"compiler-artifact"' "$work/build.json" | grep "\"kind\":\[\"$1\"\]" |
        grep -o '"executable":"[^"]*"' | cut -d'"' -f4
}
mapfile -t tests < <(artifacts test | sort -u)
mapfile -t clis < <(artifacts bin | sort -u)
[ "${#tests[@]}" -gt 0 ] || fail "no test binary matches tests/guest_*.rs"
[ "${#clis[@]}" -gt 0 ] || fail "the ctrmon CLI was not built"

# --- initramfs ---------------------------------------------------------------
ramfs="$work/initramfs"
rm -rf "$ramfs"
mkdir -p "$ramfs"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,root,guest/setup.d}
cp /bin/busybox "$ramfs/bin/busybox"
for applet in $(/bin/busybox --list-full); do
    [ -e "$ramfs/$applet" ] || ln -s /bin/busybox "$ramfs/$applet"
done

# Copies a binary to the same absolute path in the initramfs, with the
# shared libraries it loads.
copy_with_libs() {
    local f lib
    for f in "$@"; do
        mkdir -p "$ramfs/$(dirname "$f")"
        rm -f "$ramfs/$f"
        cp -L "$f" "$ramfs/$f"
        for lib in $(ldd "$f" 2>/dev/null | grep -o '/[^ ]*' || true); do
            [ -e "$ramfs/$lib" ] && continue
            mkdir -p "$ramfs/$(dirname "$lib")"
            cp -L "$lib" "$ramfs/$lib"
        done
    done
}
# GNU tail is the tests' memory hog (it buffers an endless line); busybox's
# applet of the same name is replaced. setfattr marks delegated cgroups.
copy_with_libs "$(command -v tail)" "$(command -v setfattr)" "${tests[@]}" "${clis[@]}"
cp tests/guest/init "$ramfs/init"
chmod 755 "$ramfs/init"
: >"$ramfs/guest/tests"
for t in "${tests[@]}"; do
    name="$(basename "$t")"
    echo "${name%-*} $t" >>"$ramfs/guest/tests"
done
{
    printf 'CTRMON_GUEST_TEST_ARGS=%q\n' "$*"
    printf 'CTRMON_GUEST_BINARY_TIMEOUT=%q\n' "${CTRMON_GUEST_BINARY_TIMEOUT:-300}"
} >"$ramfs/guest/env"
# Kernel modules the set-up hooks load (insmod, in dependency order).
if [ -d "$kdir/modules" ]; then
    mkdir -p "$ramfs/guest/modules"
    for m in virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk; do
        f="$(find "$kdir/modules" -name "$m.ko*" | head -n 1)"
        case "$f" in
        "") ;;
        *.xz) xz -dc "$f" >"$ramfs/guest/modules/$m.ko" ;;
        *.zst) zstd -qdc "$f" >"$ramfs/guest/modules/$m.ko" ;;
        *) cp "$f" "$ramfs/guest/modules/$m.ko" ;;
        esac
    done
fi
for hook in tests/guest/setup.d/*.sh; do
    [ -f "$hook" ] && cp "$hook" "$ramfs/guest/setup.d/"
done
(cd "$ramfs" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$work/initramfs.gz"
say "initramfs $(du -h "$work/initramfs.gz" | cut -f1), kernel $kver, ${#tests[@]} test binaries: $(cut -d' ' -f1 "$ramfs/guest/tests" | tr '\n' ' ')"

# --- boot --------------------------------------------------------------------
# A blank disk for the swap tests (tests/guest/setup.d/swap.sh); sparse.
rm -f "$work/swap.img"
truncate -s 64M "$work/swap.img"
console="$work/console.log"
limit="${CTRMON_GUEST_TIMEOUT:-900}"
t0="$(date +%s.%N)"
set +e
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg -m 1024 -smp 2 -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$work/initramfs.gz" \
    -drive "file=$work/swap.img,format=raw,if=virtio,cache=unsafe" \
    -append "console=ttyS0 quiet cgroup_no_v1=all panic=-1" \
    </dev/null 2>&1 | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/\r//g' | tee "$console"
qemu_rc="${PIPESTATUS[0]}"
set -e
t1="$(date +%s.%N)"
wall="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"

# --- verdict -----------------------------------------------------------------
[ "$qemu_rc" -ne 124 ] && [ "$qemu_rc" -ne 137 ] || fail "the guest timed out after ${limit}s (console: $console)"
grep -q '^@@ctrmon-guest boot ' "$console" || fail "the guest did not boot (qemu status $qemu_rc; console: $console)"
if grep -q '^@@ctrmon-guest setup-failed' "$console"; then
    fail "guest set-up failed: $(grep '^@@ctrmon-guest setup-failed' "$console" | cut -d' ' -f3- | tr '\n' ' ')"
fi
done_line="$(grep '^@@ctrmon-guest done ' "$console" || true)"
[ -n "$done_line" ] || fail "the guest stopped before finishing its tests (qemu status $qemu_rc; console: $console)"

status=0
passed=0
for t in "${tests[@]}"; do
    name="$(basename "$t")"
    name="${name%-*}"
    end="$(grep "^@@ctrmon-guest end $name " "$console" || true)"
    # libtest's summary of this binary: the line after its begin marker.
    summary="$(sed -n "/^@@ctrmon-guest begin $name\$/,/^@@ctrmon-guest end $name /p" "$console" | grep '^test result: ' | tail -n 1 || true)"
    n="$(echo "$summary" | sed -n 's/.* \([0-9]*\) passed;.*/\1/p')"
    passed=$((passed + ${n:-0}))
    if [ "$end" != "@@ctrmon-guest end $name rc=0" ] || [ -z "$summary" ]; then
        say "$name: FAILED (${end:-no end marker}) ${summary}"
        status=1
    else
        say "$name: ${summary#test result: }"
    fi
    if grep -q "^@@ctrmon-guest leftover $name " "$console"; then
        say "$name: left cgroups behind: $(grep "^@@ctrmon-guest leftover $name " "$console" | cut -d' ' -f4-)"
        status=1
    fi
done
[ "$passed" -gt 0 ] || fail "no test ran in the guest"

up_boot="$(sed -n 's/^@@ctrmon-guest boot uptime=\([0-9.]*\).*/\1/p' "$console")"
up_start="$(echo "$done_line" | sed -n 's/.*tests-start=\([0-9.]*\).*/\1/p')"
up_end="$(echo "$done_line" | sed -n 's/.* uptime=\([0-9.]*\).*/\1/p')"
tests_s="$(awk -v a="$up_start" -v b="$up_end" 'BEGIN { printf "%.1f", b - a }')"
say "kernel $kver: /init at ${up_boot}s of guest uptime, tests ${tests_s}s, ${wall}s from qemu start to power-off"
[ "$status" -eq 0 ] || fail "some guest tests failed (console: $console)"
say "PASS: $passed tests in ${#tests[@]} binaries"
