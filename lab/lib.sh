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
