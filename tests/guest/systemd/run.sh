#!/usr/bin/env bash
# Runs ctrmon's systemd tests (tests/guest/systemd/tests.sh) under a real
# systemd: Debian 12's (bookworm) systemd as PID 1 of a qemu guest (TCG, no
# KVM needed) running Debian's kernel with cgroup v2 only, booted from an
# initramfs that holds a debootstrapped minimal Debian root with systemd,
# dbus, logind and dbus-user-session, and a user `u` (uid 1000) with
# lingering, so that user@1000.service runs. The unit ctrmon-test.service
# runs the tests after multi-user.target, prints one result line each on
# the serial console and powers off.
#
#   tests/guest/systemd/run.sh
#
# Installs what it needs with apt-get (qemu-system-x86, debootstrap, cpio,
# zstd). The root (target/guest-systemd/rootfs) and its packed initramfs
# are cached: a rerun only builds ctrmon, packs it with the test script
# into a small second archive and boots. The cache is rebuilt when
# setup-root.sh changes. The console is saved in
# target/guest-systemd/console.log.
#
# Environment: CTRMON_GUEST_TIMEOUT (seconds for the whole guest, default
# 900), CTRMON_DEBIAN_MIRROR (default http://deb.debian.org/debian),
# CTRMON_RACE_ROUNDS (rounds of the scope removal race with one scope,
# default 10) and CTRMON_RACE_ROUNDS_20 (with 20 at once, default 1).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here/../../.."
root="$PWD"
work="$root/target/guest-systemd"
# A kernel cache of its own: CI runs this beside tests/guest/run.sh, and
# two fetches into one cache would race.
work_cache="$work/cache"
mkdir -p "$work" "$work_cache"

say() { echo "systemd-guest: $*" >&2; }
fail() {
    say "FAIL: $*"
    exit 1
}
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# --- tools -------------------------------------------------------------------
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
command -v debootstrap >/dev/null || missing+=(debootstrap)
command -v cpio >/dev/null || missing+=(cpio)
command -v zstd >/dev/null || missing+=(zstd)
command -v xz >/dev/null || missing+=(xz-utils)
command -v curl >/dev/null || missing+=(curl)
command -v gpgv >/dev/null || missing+=(gpgv)
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
[ -f "$keyring" ] || missing+=(debian-archive-keyring)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel ------------------------------------------------------------------
# Debian 12's, as systemd 252 runs on it; fetched and checked as the
# busybox guest's kernels are (tests/guest/kernel.sh), into its own cache.
kcache="$work_cache"
. "$here/../kernel.sh"
fetch_kernel bookworm

# --- the cached root ---------------------------------------------------------
mirror="${CTRMON_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
include="systemd,systemd-sysv,dbus,dbus-user-session,libpam-systemd,util-linux,procps"
stamp="$( (echo "$include $mirror"; cat "$here/setup-root.sh" "$here/ctrmon-test.service") | sha256sum | cut -c1-16)"
rootfs="$work/rootfs"
base="$work/base.cpio.zst"
if [ "$(cat "$work/stamp" 2>/dev/null)" != "$stamp" ] || [ ! -f "$base" ]; then
    t0="$(now)"
    rm -rf "$rootfs" "$base" "$work/stamp"
    say "debootstrap bookworm (minbase + $include) into $rootfs"
    debootstrap --variant=minbase --include="$include" bookworm "$rootfs" "$mirror" \
        >"$work/debootstrap.log" 2>&1 || fail "debootstrap failed (log: $work/debootstrap.log)"
    cp "$here/ctrmon-test.service" "$rootfs/etc/systemd/system/ctrmon-test.service"
    cp "$here/setup-root.sh" "$rootfs/setup-root.sh"
    chroot "$rootfs" /bin/sh /setup-root.sh || fail "setup-root.sh failed in the chroot"
    rm -f "$rootfs/setup-root.sh"
    (cd "$rootfs" && find . -print0 | cpio --null -o -H newc --quiet) | zstd -q -T0 -3 >"$base.tmp"
    mv "$base.tmp" "$base"
    echo "$stamp" >"$work/stamp"
    say "root built in $(since "$t0")s: $(du -sh "$rootfs" | cut -f1) unpacked, $(du -h "$base" | cut -f1) packed"
fi

# --- binaries and tests ------------------------------------------------------
say "building ctrmon (release)"
cargo build --release --quiet --bin ctrmon
overlay="$work/overlay"
rm -rf "$overlay"
mkdir -p "$overlay/usr/local/bin" "$overlay/guest"
cp target/release/ctrmon "$overlay/usr/local/bin/ctrmon"
cp "$here/tests.sh" "$overlay/guest/tests.sh"
chmod 755 "$overlay/guest/tests.sh" "$overlay/usr/local/bin/ctrmon"
{
    printf 'CTRMON_RACE_ROUNDS=%q\n' "${CTRMON_RACE_ROUNDS:-10}"
    printf 'CTRMON_RACE_ROUNDS_20=%q\n' "${CTRMON_RACE_ROUNDS_20:-1}"
} >"$overlay/guest/env"
# The kernel unpacks concatenated archives in order, the later ones over
# the earlier: the cached root, then this run's files.
(cd "$overlay" && find . -print0 | cpio --null -o -H newc --quiet) | zstd -q -3 >"$work/overlay.cpio.zst"
cat "$base" "$work/overlay.cpio.zst" >"$work/initramfs"

# --- boot --------------------------------------------------------------------
console="$work/console.log"
limit="${CTRMON_GUEST_TIMEOUT:-900}"
t0="$(now)"
set +e
# loglevel=1: OOM reports printed on an emulated serial console would cost
# seconds each (the kernel log keeps them). -accel tcg,thread=single: the
# multi-threaded TCG raced the kernel's live code patching (design notes).
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=single -m 2048 -smp 2 -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$work/initramfs" \
    -append "console=ttyS0 loglevel=1 rdinit=/sbin/init systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all systemd.show_status=error panic=-1" \
    </dev/null 2>&1 | sed -u 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g; s/\r//g' | tee "$console"
qemu_rc="${PIPESTATUS[0]}"
set -e
wall="$(since "$t0")"

# --- verdict -----------------------------------------------------------------
[ "$qemu_rc" -ne 124 ] && [ "$qemu_rc" -ne 137 ] || fail "the guest timed out after ${limit}s (console: $console)"
grep -q '^@@ctrmon-systemd start ' "$console" || fail "the tests never started (qemu status $qemu_rc; console: $console)"
done_line="$(grep '^@@ctrmon-systemd done ' "$console" || true)"
[ -n "$done_line" ] || fail "the guest stopped before finishing its tests (qemu status $qemu_rc; console: $console)"
passed="$(grep -c '^@@ctrmon-systemd pass ' "$console" || true)"
failed="$(grep -c '^@@ctrmon-systemd fail ' "$console" || true)"
grep '^@@ctrmon-systemd figure ' "$console" | cut -d' ' -f3- | sed 's/^/systemd-guest: figure: /' >&2 || true
grep '^@@ctrmon-systemd fail ' "$console" | cut -d' ' -f3- | sed 's/^/systemd-guest: FAILED: /' >&2 || true
say "$(grep '^@@ctrmon-systemd start ' "$console" | cut -d' ' -f3-), $done_line; ${wall}s from qemu start to power-off"
[ "$failed" -eq 0 ] || fail "$failed of $((passed + failed)) systemd tests failed (console: $console)"
[ "$passed" -gt 0 ] || fail "no test ran"
say "PASS: $passed tests"
