# Shared helpers for the lab scripts.  Source this file; do not run it.
# shellcheck shell=bash

set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
LOGS=$BUILD/logs
mkdir -p "$LOGS"

KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/linux-source-6.1.tar.xz}
KTREE=$BUILD/linux          # git tree: base commit + the series
KBASE=$BUILD/linux-base     # git worktree at the base commit
CROSS=aarch64-linux-gnu-

_lab_t0=${_lab_t0:-$(date +%s)}
export _lab_t0

# progress MSG: one line with the elapsed time of the whole lab command.
progress() {
	local now
	now=$(date +%s)
	printf '[%4ds] %s\n' "$((now - _lab_t0))" "$*" >&2
}

die() {
	printf 'error: %s\n' "$*" >&2
	exit 1
}

# run_logged LOG CMD...: run CMD with its output in LOG; on failure show
# the tail of the log and where to find the rest.
run_logged() {
	local log=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		tail -n 25 "$log" >&2
		die "'$*' failed; full log: $log"
	fi
}

need_cmd() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 ||
			die "'$c' is missing; run 'make deps' as root (or apt-get install the package that provides it)"
	done
}

# configure SRC OUTDIR NAME FRAGMENT...: SRC/OUTDIR/.config = allnoconfig
# with the fragments merged (a symbol set by a later one overrides earlier
# ones).  Every line of the merged fragment must survive Kconfig's
# dependencies.  Does nothing when the fragments did not change.
configure() {
	local src=$1 outdir=$2 name=$3 out frag sum bad
	shift 3
	mkdir -p "$src/$outdir"
	out=$(cd "$src/$outdir" && pwd)
	frag=$out/.lab-fragment
	cat "$@" | awk '
		{ sym = "" }
		/^CONFIG_[A-Z0-9_]+=/ { sym = $0; sub(/=.*/, "", sym) }
		/^# CONFIG_[A-Z0-9_]+ is not set/ { sym = $2 }
		{ line[NR] = $0; key[NR] = sym; if (sym != "") last[sym] = NR }
		END { for (i = 1; i <= NR; i++) if (key[i] == "" || last[key[i]] == i) print line[i] }
	' >"$frag.new"
	cmp -s "$frag.new" "$frag" || mv "$frag.new" "$frag"
	rm -f "$frag.new"
	sum=$(sha256sum "$frag" | cut -d' ' -f1)
	[ ! -f "$out/.config" ] || [ "$(cat "$out/.lab-config" 2>/dev/null)" != "$sum" ] || return 0
	progress "$name: configuring (allnoconfig + ${*#"$TOP"/})"
	run_logged "$LOGS/config-$name.log" make -C "$src" O="$outdir" ARCH=arm64 \
		CROSS_COMPILE="$CROSS" KCONFIG_ALLCONFIG="$frag" allnoconfig
	# A symbol that is not set may also be absent (its dependencies unmet).
	bad=$(grep -E '^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)' "$frag" |
		while read -r line; do
			case $line in
			"# "*) sym=${line#\# } sym=${sym%% *}
				! grep -q "^$sym=" "$out/.config" || echo "$line" ;;
			*) grep -qxF "$line" "$out/.config" || echo "$line" ;;
			esac
		done)
	[ -z "$bad" ] || die "config fragment lines not honoured by Kconfig ($name): $bad"
	echo "$sum" >"$out/.lab-config"
}
