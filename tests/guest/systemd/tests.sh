#!/bin/bash
# ctrmon's tests under a real systemd (PID 1 of the guest that run.sh
# boots), run by ctrmon-test.service as root after multi-user.target. One
# line per result on the console: "@@ctrmon-systemd pass NAME",
# "@@ctrmon-systemd fail NAME: WHY", "@@ctrmon-systemd figure …"; then
# "@@ctrmon-systemd done …" and power-off. run.sh reads these lines.
export PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
export LC_ALL=C
tmp=/run/ctrmon-tests
mkdir -p "$tmp"
chmod 1777 "$tmp"
# Settings from the host (run.sh): the race's rounds.
[ -f /guest/env ] && . /guest/env
npass=0
nfail=0

mark() { echo "@@ctrmon-systemd $*"; }
pass() {
    mark pass "$1"
    npass=$((npass + 1))
}
failed() {
    mark fail "$1: $2"
    nfail=$((nfail + 1))
}
uptime_s() { cut -d' ' -f1 /proc/uptime; }
finish() {
    mark done "pass=$npass fail=$nfail uptime=$(uptime_s)"
    sync
    systemctl poweroff --force --force
}
trap finish EXIT

mark start "uptime=$(uptime_s) systemd=$(systemctl --version | sed -n '1s/^systemd \([0-9]*\).*/\1/p') kernel=$(uname -r)"

# As user u, with the user manager's bus (user@1000.service runs: lingering).
asu() {
    runuser -u u -- env XDG_RUNTIME_DIR=/run/user/1000 \
        DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/1000/bus HOME=/home/u "$@"
}

for _ in $(seq 1 300); do
    [ "$(systemctl is-active user@1000.service)" = active ] && [ -S /run/user/1000/bus ] && break
    sleep 0.2
done
if [ "$(systemctl is-active user@1000.service)" != active ]; then
    failed user-manager "user@1000.service is $(systemctl is-active user@1000.service)"
    exit 1
fi
mark info "user manager up at uptime=$(uptime_s)"

# Runs "$@", keeping its stdout in $tmp/out, its stderr in $tmp/err and its
# status in $rc.
capture() {
    "$@" >"$tmp/out" 2>"$tmp/err"
    rc=$?
}
# expect NAME RC GREP...: the last capture exited RC and its stdout+stderr
# holds every extended regex given.
expect() {
    local name="$1" want="$2" re
    shift 2
    if [ "$rc" != "$want" ]; then
        failed "$name" "status $rc, not $want; stdout: $(head -c 600 "$tmp/out" | tr '\n' ' ') stderr: $(head -c 600 "$tmp/err" | tr '\n' ' ')"
        return 1
    fi
    for re in "$@"; do
        if ! cat "$tmp/out" "$tmp/err" | grep -Eq -- "$re"; then
            failed "$name" "no match for /$re/; stdout: $(head -c 600 "$tmp/out" | tr '\n' ' ') stderr: $(head -c 600 "$tmp/err" | tr '\n' ' ')"
            return 1
        fi
    done
    pass "$name"
}
# expect_not NAME REGEX: the last capture's output does not match.
expect_not() {
    if cat "$tmp/out" "$tmp/err" | grep -Eq -- "$2"; then
        failed "$1" "unexpected /$2/: $(cat "$tmp/err" | tr '\n' ' ')"
        return 1
    fi
    pass "$1"
}
# The command's cgroup (the start line's) sat beside a supervisor leaf.
beside_leaf() {
    local cg
    # run's events go to stderr (stdout is the command's).
    cg="$(sed -n 's/^{"event":"start".*"cgroup":"\([^"]*\)".*/\1/p' "$tmp/err" | head -n 1)"
    case "$cg" in
    */ctrmon-*) ;;
    *)
        failed "$1" "no start line with a ctrmon-* cgroup: $(head -c 400 "$tmp/err")"
        return 1
        ;;
    esac
    local leaf
    leaf="$(cat "$tmp/leaf" 2>/dev/null)"
    rm -f "$tmp/leaf"
    if [ "$leaf" != "${cg%/*}/supervisor" ]; then
        failed "$1" "ctrmon ran in ${leaf:-(not written)}, the command in $cg"
        return 1
    fi
    pass "$1"
}
leftovers() {
    local left
    left="$(find /sys/fs/cgroup -name 'ctrmon-[0-9]*' -type d 2>/dev/null)"
    if [ -n "$left" ]; then
        failed "$1" "cgroups left behind: $(echo "$left" | tr '\n' ' ')"
    else
        pass "$1"
    fi
}
# Prints ctrmon's own cgroup to $tmp/leaf (as the shell that execs it sees
# it after ctrmon moved itself: read by ctrmon's child through its parent).
INNER='cat /proc/$PPID/cgroup | sed -n "s|^0::|/sys/fs/cgroup|p" >'"$tmp"'/leaf'
leafsh() { echo "$INNER; $1"; }

# --- root ----------------------------------------------------------------------
# ctrmon-test.service is not delegated.
capture ctrmon run -- true
expect root-undelegated-refused 2 'not delegated' 'systemd-run --scope -p Delegate=yes ctrmon run -- true' &&
    expect_not root-hint-without-user 'systemd-run --user'

capture systemd-run --scope -q -p Delegate=yes ctrmon run --memory 32M -- sh -c "$(leafsh 'exec tail /dev/zero')"
expect root-scope-oom 137 '"event":"exit".*"signal":9.*"oom_killed":true' '"event":"oom"' && beside_leaf root-scope-leaf

capture systemd-run --scope -q -p Delegate=yes ctrmon run --no-kmsg --memory 32M -- tail /dev/zero
expect root-scope-oom-no-kmsg 137 '"event":"exit".*"oom_killed":true'

capture systemd-run --scope -q -p Delegate=yes ctrmon run -- sh -c 'exit 7'
expect root-scope-exit7 7 '"event":"exit".*"code":7'

# A process that moved itself into a supervisor leaf before ctrmon ran.
PREMADE='cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); mkdir "$cg/supervisor" && echo $$ >"$cg/supervisor/cgroup.procs" && exec "$@"'
capture systemd-run --scope -q -p Delegate=yes sh -c "$PREMADE" sh ctrmon run --memory 32M -- tail /dev/zero
expect root-premade-leaf-oom 137 '"event":"exit".*"oom_killed":true'

leftovers root-nothing-left

# --- rootless ------------------------------------------------------------------
# What the user manager writes for a transient unit (the rule in
# src/bin/ctrmon/placement/user_manager.rs reads it), and the ownership of
# a delegated scope and of a plain one.
cat >"$tmp/show.sh" <<'SHOW'
cg=/sys/fs/cgroup$(sed -n 's/^0:://p' /proc/self/cgroup)
u=${cg##*/}
echo "$cg, uid $(stat -c %u "$cg"), cgroup.procs uid $(stat -c %u "$cg/cgroup.procs"), cgroup.subtree_control uid $(stat -c %u "$cg/cgroup.subtree_control")"
grep -v '^#' "/run/user/1000/systemd/transient/$u" | grep -v '^Description=' | tr '\n' ' '
echo
SHOW
chmod 755 "$tmp/show.sh"
asu systemd-run --user --scope -q -p Delegate=yes "$tmp/show.sh" | sed 's/^/@@ctrmon-systemd info delegated scope: /'
asu systemd-run --user --scope -q "$tmp/show.sh" | sed 's/^/@@ctrmon-systemd info plain scope: /'
asu systemd-run --user --wait --pipe -q -p Delegate=yes "$tmp/show.sh" | sed 's/^/@@ctrmon-systemd info delegated service: /'

capture asu systemd-run --user --scope -q ctrmon run -- true
expect user-plain-scope-refused 2 'systemd-run --user --scope -p Delegate=yes ctrmon run -- true'

capture asu ctrmon run -- true
expect user-service-cgroup-refused 2 'systemd-run --user --scope -p Delegate=yes'

capture asu systemd-run --user --wait --pipe -q ctrmon run -- true
expect user-plain-service-refused 2 'systemd-run --user --scope -p Delegate=yes ctrmon run -- true'

# A cgroup the user made inside a plain scope, named like a unit, with a
# planted transient file that says Delegate=yes: not a unit of the manager.
FAKE='cg=/sys/fs/cgroup$(sed -n "s/^0:://p" /proc/self/cgroup); mkdir "$cg/fake.scope" && echo $$ >"$cg/fake.scope/cgroup.procs" && printf "[Scope]\nDelegate=yes\n" >/run/user/1000/systemd/transient/fake.scope && exec "$@"'
capture asu systemd-run --user --scope -q sh -c "$FAKE" sh ctrmon run -- true
rm -f /run/user/1000/systemd/transient/fake.scope
expect user-made-cgroup-refused 2 'is not delegated' 'systemd-run --user --scope -p Delegate=yes ctrmon run -- true'

capture asu systemd-run --user --scope -q -p Delegate=yes ctrmon run --memory 32M -- sh -c "$(leafsh 'exec tail /dev/zero')"
# No /dev/kmsg for a user (dmesg_restrict=1): the counters mark the exit.
expect user-scope-oom 137 '"event":"exit".*"signal":9.*"oom_killed":true' '"event":"oom"' && beside_leaf user-scope-leaf

capture asu systemd-run --user --scope -q -p Delegate=yes ctrmon run -- sh -c 'exit 7'
expect user-scope-exit7 7 '"event":"exit".*"code":7'

capture asu systemd-run --user --scope -q -p Delegate=yes sh -c "$PREMADE" sh ctrmon run --memory 32M -- tail /dev/zero
expect user-premade-leaf-oom 137 '"event":"exit".*"oom_killed":true'

capture asu systemd-run --user --wait --pipe -q -p Delegate=yes ctrmon run --memory 32M -- tail /dev/zero
expect user-service-oom 137 '"event":"exit".*"oom_killed":true'

capture asu systemd-run --user --wait --pipe -q -p Delegate=yes ctrmon run -- sh -c 'exit 7'
expect user-service-exit7 7 '"event":"exit".*"code":7'

leftovers user-nothing-left

# --- the scope removal race ----------------------------------------------------
# N transient scopes with MemoryMax=32M, each held at a FIFO until its
# `ctrmon watch --pid P --cgroup C` is armed, then all released at once:
# systemd removes each scope's cgroup as soon as its tail is OOM-killed,
# and memory.events with it. Each watch's lines are classed:
#   exact    an oom line reporting the kill (oom_kill) before the exit, the
#            exit marked oom_killed
#   partial  oom lines before the exit, none with the kill, the exit not
#            marked: the cgroup was removed before its kill could be read
#   lost     no oom line at all, the removal reported before the exit: the
#            cgroup was removed before ctrmon read the OOM
#   bad      anything else: an exit before its oom, populated:false before
#            the kill that emptied the cgroup, an exit marked without
#            a reported kill, a reported kill whose exit is not marked (also
#            when the removal came first: the kill is the watch's, not the
#            cgroup's), a missing exit
# With the kernel log every watch must be exact (the log names the victim
# whatever the cgroup's files show); with counters alone (--no-kmsg, or a
# user's ctrmon: dmesg_restrict) none may be bad, and the rates are shown.
race() {
    local n="$1" group="$2" flags i pids=() wpids=() cg class
    [ "${group#*-}" = counters ] && flags=--no-kmsg
    rm -rf "$tmp/race"
    mkdir -p "$tmp/race"
    for i in $(seq 1 "$n"); do
        mkfifo "$tmp/race/go$i"
        systemd-run --scope -q -p MemoryMax=32M --unit="race-$group-$RANDOM-$i" \
            sh -c 'echo "$$ $(sed -n "s/^0:://p" /proc/self/cgroup)" >"$2"; read x <"$1"; exec tail /dev/zero' \
            sh "$tmp/race/go$i" "$tmp/race/where$i" &
        pids+=($!)
    done
    for i in $(seq 1 "$n"); do
        for _ in $(seq 1 400); do
            [ -s "$tmp/race/where$i" ] && break
            sleep 0.05
        done
        cg="/sys/fs/cgroup$(cut -d' ' -f2 "$tmp/race/where$i")"
        # shellcheck disable=SC2086
        ctrmon watch $flags --pid "${pids[i - 1]}" --cgroup "$cg" >"$tmp/race/w$i" 2>&1 &
        wpids+=($!)
    done
    # Armed: each watch holds its pidfd (opened after the cgroup's baseline).
    for i in $(seq 1 "$n"); do
        for _ in $(seq 1 400); do
            ls -l "/proc/${wpids[i - 1]}/fd" 2>/dev/null | grep -q 'anon_inode:\[pidfd\]' && break
            sleep 0.05
        done
    done
    sleep 0.5
    for i in $(seq 1 "$n"); do
        echo go >"$tmp/race/go$i"
    done
    for i in $(seq 1 "$n"); do
        wait "${pids[i - 1]}" 2>/dev/null
        timeout 120 tail --pid="${wpids[i - 1]}" -f /dev/null
        wait "${wpids[i - 1]}"
        local f="$tmp/race/w$i" o e r k p
        o="$(grep -n '"event":"oom"' "$f" | head -n 1 | cut -d: -f1)"
        e="$(grep -n '"event":"exit"' "$f" | head -n 1 | cut -d: -f1)"
        r="$(grep -n '"event":"removed"' "$f" | head -n 1 | cut -d: -f1)"
        marked=no
        grep -q '"event":"exit".*"oom_killed":true' "$f" && marked=yes
        # The first line that reports a kill, before the exit.
        k="$(grep -n '"event":"oom".*"oom_kill":' "$f" | head -n 1 | cut -d: -f1)"
        # populated:false, if the watch saw it before the removal.
        p="$(grep -n '"event":"populated".*"populated":false' "$f" | head -n 1 | cut -d: -f1)"
        if [ -z "$e" ] || { [ -n "$o" ] && [ "$o" -gt "$e" ]; }; then
            class=bad
        elif [ -n "$k" ] && [ -n "$p" ] && [ "$p" -lt "$k" ]; then
            class=bad
        elif [ -n "$k" ] && [ "$k" -lt "$e" ]; then
            [ $marked = yes ] && class=exact || class=bad
        elif [ $marked = yes ]; then
            class=bad
        elif [ -n "$o" ]; then
            class=partial
        elif [ -n "$r" ] && [ "$r" -lt "$e" ]; then
            class=lost
        else
            class=bad
        fi
        echo "$class" >>"$tmp/classes-$n-$group"
        [ "$class" = exact ] || mark info "race $n $group watch $i: $class: $(tr '\n' ' ' <"$f")"
    done
}
# summary N GROUP: the figure line and the verdict of every run of a group.
summary() {
    local f="$tmp/classes-$1-$2" total exact partial lost bad
    total="$(wc -l <"$f")"
    exact="$(grep -cx exact "$f")"
    partial="$(grep -cx partial "$f")"
    lost="$(grep -cx lost "$f")"
    bad="$(grep -cx bad "$f")"
    mark figure "race: $1 scope(s) at once, $2: $total watches (uptime $(uptime_s)): exact $exact, partial $partial, lost $lost, bad $bad"
    if [ "$bad" -gt 0 ] || { [ "$2" = kmsg ] && [ "$exact" != "$total" ]; }; then
        failed "race-$1-$2" "exact $exact, partial $partial, lost $lost, bad $bad of $total"
    else
        pass "race-$1-$2"
    fi
}
for _ in $(seq 1 "${CTRMON_RACE_ROUNDS:-10}"); do
    race 1 kmsg
    race 1 counters
done
summary 1 kmsg
summary 1 counters
for _ in $(seq 1 "${CTRMON_RACE_ROUNDS_20:-1}"); do
    race 20 kmsg
    race 20 counters
done
summary 20 kmsg
summary 20 counters
