#!/bin/bash
# make fresh-check: prove the README's first command, 'make run', works on a
# really fresh Debian 12.  A minbase bookworm root is debootstrapped into
# build/fresh/root, a clean clone of the committed HEAD goes into its
# /root/lab, only what the README has a user install first (git, make) is
# installed, and 'make run' runs there.  Nothing of this machine leaks in:
# no packages, no ccache, no build/, no uncommitted files, no environment.
#
# Run as root.  Uses network (deb.debian.org) and disk: ~450 MiB for the
# root before 'make run', plus the kernel source and builds.
#
# Environment:
#   FRESH_TIMEOUT=90m  hard limit on 'make run' in the root (timeout(1) syntax)
#   FRESH_KEEP=1       keep build/fresh/root afterwards for debugging (the
#                      default); 0 removes it.  A new run always starts from
#                      scratch either way.
#   FRESH_DRY=1        stop after installing git and make in the root and
#                      running 'make --version' and 'python3 --version' there
#                      (tests the debootstrap, apt and clone parts; no kernel
#                      build)
#
# Output: progress on stderr, the whole 'make run' output in
# build/logs/fresh-check.log, a summary on stdout and as key=value lines in
# build/fresh/result.txt.
. "$(dirname "$0")/lib.sh"
[ "$KERNEL" = 6.1 ] ||
	die "make fresh-check runs the README's 'make run' as a new user does, on the default KERNEL=6.1; KERNEL=$KERNEL is not supported here"

SUITE=bookworm
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
# What the README has a user install before 'make run' (git to clone, make
# to run it).  Keep this in step with README.md.
USER_PKGS=(git make)
HOST_PKGS=(debootstrap debian-archive-keyring)

FRESH_TIMEOUT=${FRESH_TIMEOUT:-90m}
FRESH_KEEP=${FRESH_KEEP:-1}
FRESH_DRY=${FRESH_DRY:-0}

# Canonical, as /proc/mounts and /proc/PID/root show it.
FRESH=$(realpath -m "$BUILD/fresh")
ROOT=$FRESH/root
RESULT=$FRESH/result.txt
LOG=$LOGS/fresh-check.log
CHROOT_PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

[ "$(id -u)" = 0 ] || die "fresh-check needs root (debootstrap, chroot, mount); run 'sudo make fresh-check'"
[[ $FRESH_TIMEOUT =~ ^[0-9]+[smhd]?$ ]] || die "FRESH_TIMEOUT='$FRESH_TIMEOUT': expected e.g. 90m, 2h, 5400"
# /proc/mounts escapes blanks; a path without them compares as is.
[[ $ROOT != *[[:space:]\\]* ]] || die "the checkout path must not contain blanks: $TOP"

# in_root CMD: run the shell command CMD in the root with a clean login
# environment, as a user's root shell would have it.
in_root() {
	chroot "$ROOT" /usr/bin/env -i HOME=/root PATH="$CHROOT_PATH" LANG=C.UTF-8 TERM=dumb \
		bash -lc "$1"
}

# Mount points at or below $ROOT, deepest first.
root_mounts() {
	awk -v r="$ROOT" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts | LC_ALL=C sort -r
}

# Processes whose root directory is $ROOT: what this script started there.
root_pids() {
	local p
	for p in /proc/[0-9]*; do
		[ "$(readlink "$p/root" 2>/dev/null)" = "$ROOT" ] && echo "${p#/proc/}"
	done
	return 0
}

# Stop what runs in the root, then detach every mount under it (lazily, so a
# busy one cannot stay behind).  Also cleans up after debootstrap or a run
# that was killed with SIGKILL.
release_root() {
	local pids m
	pids=$(root_pids)
	if [ -n "$pids" ]; then
		# shellcheck disable=SC2086 # word splitting wanted: a list of pids
		kill -TERM $pids 2>/dev/null || true
		sleep 2
		pids=$(root_pids)
		# shellcheck disable=SC2086
		[ -z "$pids" ] || kill -KILL $pids 2>/dev/null || true
	fi
	for m in $(root_mounts); do
		umount -l "$m" 2>/dev/null || true
	done
	[ -z "$(root_mounts)" ] || {
		printf 'error: still mounted below %s:\n%s\n' "$ROOT" "$(root_mounts)" >&2
		return 1
	}
}

phase=setup
reported=0
on_exit() {
	local rc=$?
	trap - EXIT INT TERM
	release_root || rc=1
	if [ "$reported" = 0 ] && [ -d "$FRESH" ]; then
		printf 'commit=%s\nresult=fail\nphase=%s\n' "${commit:-unknown}" "$phase" >"$RESULT"
	fi
	exit "$rc"
}
trap on_exit EXIT
trap 'echo "error: interrupted in phase: $phase" >&2; exit 130' INT
trap 'echo "error: terminated in phase: $phase" >&2; exit 143' TERM

t_start=$(date +%s)

# --- host: debootstrap -------------------------------------------------------
missing=()
for p in "${HOST_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
	progress "installing on this machine: ${missing[*]} (log: $LOGS/fresh-host-apt.log)"
	run_logged "$LOGS/fresh-host-apt-update.log" apt-get update
	run_logged "$LOGS/fresh-host-apt.log" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends "${missing[@]}"
fi

# The clone is of the committed HEAD: say which, and that local edits are
# not part of what is checked.
git_top() { git --no-optional-locks -c safe.directory="$TOP" -C "$TOP" "$@"; }
commit=$(git_top rev-parse HEAD) || die "$TOP is not a git checkout"
subject=$(git_top log -1 --format=%s HEAD)
progress "checking commit ${commit:0:12} ($subject)"
[ -z "$(git_top status --porcelain --untracked-files=no)" ] ||
	progress "note: uncommitted changes in $TOP are NOT checked (only HEAD is cloned)"

# Every run starts from nothing.  Never rm -rf a tree with live mounts: a
# bound /dev would take the host's device nodes with it.
phase=cleanup
if [ -e "$ROOT" ]; then
	pids=$(root_pids)
	[ -z "$pids" ] || die "processes still run in $ROOT (pids: ${pids//$'\n'/ }); stop them first"
	release_root || die "cannot unmount everything below $ROOT; not removing it"
	progress "removing the previous root"
	rm -rf --one-file-system "$ROOT"
fi
rm -f "$RESULT" "$LOG" "$FRESH/make-run.rc"
mkdir -p "$FRESH"

phase=debootstrap
progress "debootstrap --variant=minbase $SUITE from $MIRROR (log: $LOGS/fresh-debootstrap.log)"
t0=$(date +%s)
run_logged "$LOGS/fresh-debootstrap.log" debootstrap --variant=minbase \
	--keyring=/usr/share/keyrings/debian-archive-keyring.gpg "$SUITE" "$ROOT" "$MIRROR"
t_debootstrap=$(($(date +%s) - t0))

# The apt sources of a freshly installed Debian 12.
cat >"$ROOT/etc/apt/sources.list" <<EOF
deb $MIRROR $SUITE main
deb $MIRROR $SUITE-updates main
deb $SECURITY $SUITE-security main
EOF
cp -L /etc/resolv.conf "$ROOT/etc/resolv.conf"
# debootstrap copies this machine's hostname and writes no /etc/hosts; a
# freshly installed machine has a name of its own and both files.
echo fresh-check >"$ROOT/etc/hostname"
[ -s "$ROOT/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n127.0.1.1\tfresh-check\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# No init runs in the root, so keep package scripts from starting daemons
# there: they would outlive the check and hold the mounts.
printf '#!/bin/sh\nexit 101\n' >"$ROOT/usr/sbin/policy-rc.d"
chmod 755 "$ROOT/usr/sbin/policy-rc.d"

phase=clone
git -c safe.directory="$TOP" clone -q --no-local "$TOP" "$ROOT/root/lab" ||
	die "git clone of $TOP failed"
# A detached HEAD is cloned as the source's default branch: make sure the
# clone is at the commit announced above.
git -C "$ROOT/root/lab" checkout -q --detach "$commit" 2>/dev/null ||
	die "commit $commit is not in the clone"

# What a running machine has.  The root is bound on itself and made private,
# and so is /dev, so nothing mounted below propagates back to the host.
phase=mount
mount --bind "$ROOT" "$ROOT"
mount --make-private "$ROOT"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sysfs "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
mount --make-private "$ROOT/dev"
mount --bind /dev/pts "$ROOT/dev/pts"
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$ROOT/dev/shm"

# --- in the root: what the user installs, then the first command -------------
phase=apt
progress "in the root: apt-get update; apt-get install ${USER_PKGS[*]} (log: $LOGS/fresh-apt.log)"
t0=$(date +%s)
# Without Recommends: the check must not pass thanks to something git
# happens to recommend (patch, less, ca-certificates, ssh-client).
run_logged "$LOGS/fresh-apt.log" in_root \
	"apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${USER_PKGS[*]}"
t_apt=$(($(date +%s) - t0))

rc=0
verdict=
if [ "$FRESH_DRY" = 1 ]; then
	phase=dry
	progress "FRESH_DRY=1: not running 'make run'"
	in_root 'cd /root/lab && git log -1 --oneline && make --version | head -n 1 && { python3 --version || true; }' \
		</dev/null 2>&1 | tee "$LOG" >&2
	t_run=0
	result=dry
else
	phase="make run"
	progress "in the root: cd /root/lab && make run (timeout $FRESH_TIMEOUT; log: $LOG)"
	t0=$(date +%s)
	# In the background, so that Ctrl-C runs the traps at once (bash defers
	# them while a foreground command runs, and timeout(1) puts the run in a
	# process group of its own, out of reach of the terminal's Ctrl-C).
	{
		st=0 # not $? after the command: set -e would end this subshell first
		timeout --kill-after=60s "$FRESH_TIMEOUT" chroot "$ROOT" /usr/bin/env -i HOME=/root \
			PATH="$CHROOT_PATH" LANG=C.UTF-8 TERM=dumb bash -lc 'cd /root/lab && make run' \
			</dev/null 2>&1 || st=$?
		echo "$st" >"$FRESH/make-run.rc"
	} | tee "$LOG" >&2 &
	wait $! || true
	t_run=$(($(date +%s) - t0))
	rc=$(cat "$FRESH/make-run.rc" 2>/dev/null || echo 255)
	verdict=$(grep -m1 '^VERDICT: ' "$LOG" || true)
	if [ "$rc" = 0 ] && [[ $verdict == "VERDICT: capture OK"* ]]; then
		result=pass
	else
		result=fail
	fi
fi

# --- report ------------------------------------------------------------------
phase=report
t_total=$(($(date +%s) - t_start))
du_root=$(du -sh --one-file-system "$ROOT" 2>/dev/null | cut -f1)
du_build=$( (du -sh "$ROOT/root/lab/build" 2>/dev/null || true) | cut -f1)
# shellcheck disable=SC2016 # a dpkg-query format, not a shell expansion
ksrc=$(chroot "$ROOT" dpkg-query -W -f='${Version}' linux-source-6.1 2>/dev/null || true)
{
	echo "commit=$commit"
	echo "result=$result"
	echo "make_run_rc=$rc"
	echo "verdict=$verdict"
	echo "time_debootstrap=${t_debootstrap}s"
	echo "time_apt=${t_apt}s"
	echo "time_make_run=${t_run}s"
	echo "time_total=${t_total}s"
	echo "du_root=${du_root:-?}"
	echo "du_lab_build=${du_build:-none}"
	echo "linux_source_6_1=${ksrc:-not installed}"
	echo "log=build/logs/$(basename "$LOG")"
	echo "host=$(uname -m), $(nproc) CPUs"
} >"$RESULT"
reported=1
# A passing run is the figure the README quotes: keep it with the other
# committed results.
[ "$result" != pass ] || cp "$RESULT" "$TOP/bench/results/fresh-check.txt"
echo "== fresh-check (result: $RESULT)"
sed 's/=/: /' "$RESULT"

if [ "$FRESH_KEEP" != 1 ]; then
	release_root || die "cannot unmount everything below $ROOT; not removing it"
	rm -rf --one-file-system "$ROOT"
fi

case $result in
pass | dry) ;;
*)
	[ "$rc" != 124 ] || die "'make run' timed out after $FRESH_TIMEOUT on a fresh Debian 12; see $LOG"
	[ "$rc" = 0 ] || die "'make run' failed (rc $rc) on a fresh Debian 12; see $LOG"
	die "'make run' printed no 'VERDICT: capture OK' on a fresh Debian 12; see $LOG"
	;;
esac
