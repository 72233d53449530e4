#!/usr/bin/env bash
# Runs the guest tests in a Linux guest: Debian's kernel under qemu (TCG, no
# KVM needed), booted from an initramfs that holds busybox, the release test
# binaries and the ctrmon CLI at the paths they were built at, and
# tests/guest/init as PID 1.
#
#   tests/guest/run.sh [--kernel K] [--layout L] [--] [TEST-BINARY-ARGS...]
#
#   --kernel K   bookworm (Debian 12's 6.1, the default), bullseye (5.10),
#                trixie (6.12), another Debian suite, or the path of a
#                linux-image-*.deb
#   --layout L   v2 (the default): cgroup v2 only (cgroup_no_v1=all), every
#                tests/guest_*.rs binary;
#                v1-hybrid: memory on its own v1 hierarchy at
#                /sys/fs/cgroup/memory and cgroup2 (no controllers) at
#                /sys/fs/cgroup/unified, as Debian 10/11 boot; the binaries
#                and filters that tests/guest/v1.list names
#   TEST-BINARY-ARGS  given to every test binary (e.g. a test name filter);
#                in the v1-hybrid layout they replace the list's filters
#
# Installs what it needs with apt-get (qemu-system-x86, busybox-static,
# attr, cpio, curl, gpgv). The kernel package comes from the Debian mirror
# (CTRMON_GUEST_MIRROR, default http://deb.debian.org/debian): the suite's
# InRelease, checked with gpgv against debian-archive-keyring, its
# Packages.xz, checked against InRelease, then the .deb of the package that
# linux-image-amd64 depends on, checked against Packages.xz and unpacked
# (not installed). Downloads are cached in target/guest/cache/ (a suite's
# index for a day), so a rerun only rebuilds and boots; every layout builds
# the same set of test binaries, so runs on several kernels build once.
# Fails when the guest does not boot, times out, runs no test, or any test
# fails; the guest's console (each test's output) is printed as it comes and
# saved in target/guest/<kernel>-<layout>/console.log.
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
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

kernel=bookworm
layout=v2
test_args=()
while [ $# -gt 0 ]; do
    case "$1" in
    --kernel) [ $# -ge 2 ] || fail "--kernel needs a value"; kernel="$2"; shift 2 ;;
    --kernel=*) kernel="${1#*=}"; shift ;;
    --layout) [ $# -ge 2 ] || fail "--layout needs a value"; layout="$2"; shift 2 ;;
    --layout=*) layout="${1#*=}"; shift ;;
    -h | --help) usage; exit 0 ;;
    --) shift; test_args+=("$@"); break ;;
    *) test_args+=("$1"); shift ;;
    esac
done
case "$layout" in
v2) cmdline_cgroups="cgroup_no_v1=all" ;;
# No cgroup option, as Debian 10/11 boot: their systemd mounts the hybrid
# layout, which the guest's init mounts here in its place.
v1-hybrid) cmdline_cgroups="" ;;
*) fail "--layout $layout: v2 or v1-hybrid" ;;
esac

# --- tools -------------------------------------------------------------------
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
missing=()
command -v qemu-system-x86_64 >/dev/null || missing+=(qemu-system-x86)
# The static build: the guest has no libraries but the ones copied in.
dpkg -s busybox-static >/dev/null 2>&1 || missing+=(busybox-static)
command -v setfattr >/dev/null || missing+=(attr)
command -v cpio >/dev/null || missing+=(cpio)
command -v gzip >/dev/null || missing+=(gzip)
command -v xz >/dev/null || missing+=(xz-utils)
command -v curl >/dev/null || missing+=(curl)
command -v gpgv >/dev/null || missing+=(gpgv)
[ -f "$keyring" ] || missing+=(debian-archive-keyring)
if [ "${#missing[@]}" -gt 0 ]; then
    say "installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# --- kernel ------------------------------------------------------------------
kcache="$work/cache"
. tests/guest/kernel.sh
fetch_kernel "$kernel"
# The modules of that kernel (one version per package).
kmod=""
[ -d "$kdir/modules/$kver" ] && kmod="$kdir/modules/$kver"

# --- binaries ----------------------------------------------------------------
# What each layout runs: v2, every tests/guest_*.rs; v1-hybrid, the list's
# lines (a test binary's name, then its libtest arguments).
v1_list="tests/guest/v1.list"
mapfile -t v1_lines < <(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^[[:space:]]*$/d' "$v1_list")
v1_bins=()
for l in "${v1_lines[@]}"; do v1_bins+=("--test" "${l%% *}"); done
# One build for both layouts (the same set of binaries), so that runs on
# several kernels and layouts build once.
say "building the guest tests (release)"
cargo test --release --no-run --message-format=json --test 'guest_*' "${v1_bins[@]}" >"$work/build.json"
# One JSON object per line; integration tests have kind ["test"], the CLI
# that they run (CARGO_BIN_EXE_ctrmon) kind ["bin"].
artifacts() {
    grep '"reason":"compiler-artifact"' "$work/build.json" | grep "\"kind\":\[\"$1\"\]" |
        grep -o '"executable":"[^"]*"' | cut -d'"' -f4
}
mapfile -t built < <(artifacts test | sort -u)
mapfile -t clis < <(artifacts bin | sort -u)
[ "${#clis[@]}" -gt 0 ] || fail "the ctrmon CLI was not built"
# The executable of test target $1 (its file name is "<target>-<hash>").
executable() {
    local t
    for t in "${built[@]}"; do
        [ "$(basename "${t%-*}")" = "$1" ] && echo "$t" && return
    done
    return 1
}
# "<name> <path> [args...]" per binary to run.
runs=()
case "$layout" in
v2)
    for t in "${built[@]}"; do
        name="$(basename "${t%-*}")"
        case "$name" in guest_*) runs+=("$name $t") ;; esac
    done
    ;;
v1-hybrid)
    for l in "${v1_lines[@]}"; do
        name="${l%% *}"
        args=""
        [ "$name" = "$l" ] || args="${l#* }"
        t="$(executable "$name")" || fail "$v1_list: no test binary $name"
        runs+=("$name $t${args:+ $args}")
    done
    ;;
esac
[ "${#runs[@]}" -gt 0 ] || fail "no test binary to run in the $layout layout"
tests=()
for r in "${runs[@]}"; do
    r="${r#* }"
    tests+=("${r%% *}")
done

# --- initramfs ---------------------------------------------------------------
run_dir="$work/$(basename "$kernel" .deb)-$layout"
mkdir -p "$run_dir"
ramfs="$run_dir/initramfs"
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
# applet of the same name is replaced. setfattr marks delegated cgroups;
# util-linux's setpriv and unshare take the options the kmsg tests give.
extra=("$(command -v tail)" "$(command -v setfattr)")
for b in setpriv unshare; do
    p="$(command -v "$b" || true)"
    case "$p" in /*) [ "$(readlink -f "$p")" = /bin/busybox ] || extra+=("$p") ;; esac
done
copy_with_libs "${extra[@]}" "${tests[@]}" "${clis[@]}"
cp tests/guest/init "$ramfs/init"
chmod 755 "$ramfs/init"
printf '%s\n' "${runs[@]}" >"$ramfs/guest/tests"
{
    printf 'CTRMON_GUEST_LAYOUT=%q\n' "$layout"
    printf 'CTRMON_GUEST_TEST_ARGS=%q\n' "${test_args[*]}"
    printf 'CTRMON_GUEST_BINARY_TIMEOUT=%q\n' "${CTRMON_GUEST_BINARY_TIMEOUT:-300}"
} >"$ramfs/guest/env"

# Kernel modules the set-up hooks need: each hook names them on a line
# "# guest-modules: NAME...". What this kernel builds in needs nothing;
# the rest is found in its modules tree with its dependencies (read from
# each module's own .modinfo, as the package ships no modules.dep), and
# listed in load order in /guest/modules/order for the hook to insmod.
mod_seen=" "
mod_order=()
# The module file of module $1 ("-" and "_" are the same in module names).
module_file() {
    local pat="${1//[-_]/[-_]}"
    find "$kmod" \( -name "$pat.ko" -o -name "$pat.ko.xz" -o -name "$pat.ko.zst" \) -print -quit
}
module_text() {
    case "$1" in
    *.xz) xz -dc "$1" ;;
    *.zst) zstd -qdc "$1" ;;
    *) cat "$1" ;;
    esac
}
need_module() {
    local name="${1//-/_}" f dep
    case "$mod_seen" in *" $name "*) return ;; esac
    mod_seen+="$name "
    if [ -n "$kmod" ] && grep -q "/${name//_/[-_]}\.ko\$" "$kmod/modules.builtin"; then
        return
    fi
    [ -n "$kmod" ] || fail "kernel $kver has no modules tree, and $name is not built in"
    f="$(module_file "$name")"
    [ -n "$f" ] || fail "kernel $kver has no module $name and does not build it in"
    for dep in $(module_text "$f" | tr '\0' '\n' | sed -n 's/^depends=//p' | tr ',' ' '); do
        need_module "$dep"
    done
    mod_order+=("$f")
}
for hook in tests/guest/setup.d/*.sh; do
    [ -f "$hook" ] || continue
    cp "$hook" "$ramfs/guest/setup.d/"
    for m in $(sed -n 's/^# guest-modules://p' "$hook"); do
        need_module "$m"
    done
done
mkdir -p "$ramfs/guest/modules"
: >"$ramfs/guest/modules/order"
for f in "${mod_order[@]}"; do
    base="$(basename "$f")"
    base="${base%.xz}"
    base="${base%.zst}"
    module_text "$f" >"$ramfs/guest/modules/$base"
    echo "$base" >>"$ramfs/guest/modules/order"
done
(cd "$ramfs" && find . -print0 | cpio --null -o -H newc --quiet) | gzip -1 >"$run_dir/initramfs.gz"
say "initramfs $(du -h "$run_dir/initramfs.gz" | cut -f1), kernel $kver, layout $layout, modules: $(tr '\n' ' ' <"$ramfs/guest/modules/order")${#tests[@]} test binaries: $(cut -d' ' -f1 "$ramfs/guest/tests" | tr '\n' ' ')"

# --- boot --------------------------------------------------------------------
# A blank disk for the swap tests (tests/guest/setup.d/swap.sh); sparse.
rm -f "$run_dir/swap.img"
truncate -s 64M "$run_dir/swap.img"
console="$run_dir/console.log"
limit="${CTRMON_GUEST_TIMEOUT:-900}"
t0="$(date +%s.%N)"
set +e
# Single-threaded TCG: multi-threaded TCG raced the kernel's live code
# patching and panicked about one guest in seven (see design.md).
timeout --kill-after=10 "$limit" qemu-system-x86_64 \
    -accel tcg,thread=single -m 1024 -smp 2 -nographic -no-reboot -nic none \
    -kernel "$vmlinuz" -initrd "$run_dir/initramfs.gz" \
    -drive "file=$run_dir/swap.img,format=raw,if=virtio,cache=unsafe" \
    -append "console=ttyS0 quiet $cmdline_cgroups panic=-1" \
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
for r in "${runs[@]}"; do
    name="${r%% *}"
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
say "kernel $kver, layout $layout: /init at ${up_boot}s of guest uptime, tests ${tests_s}s, ${wall}s from qemu start to power-off"
[ "$status" -eq 0 ] || fail "some guest tests failed (console: $console)"
say "PASS: $passed tests in ${#runs[@]} binaries (kernel $kver, layout $layout)"
