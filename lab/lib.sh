# Shared helpers for the lab scripts.  Source this file; do not run it.
# shellcheck shell=bash

set -euo pipefail

TOP=${TOP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
BUILD=${BUILD:-$TOP/build}
LOGS=$BUILD/logs
mkdir -p "$LOGS"

# KERNEL picks the kernel line: 6.1 (the default), 6.12 or 7.3.  Each has
# its own Debian source package, tree, series and run directories; what
# differs between them is in one table, KERNELS in lab/variants.py.
KERNEL=${KERNEL:-6.1}
export KERNEL
if command -v python3 >/dev/null 2>&1; then
	_kvars=$(python3 "$TOP/lab/variants.py" kernel) || exit 1
	eval "$_kvars"
elif [ "${LAB_DEPS:-}" = 1 ]; then
	# make deps on a bare machine: it installs python3 first, then
	# starts again (lab/deps.sh).
	KSUFFIX= KSRC_SUITE=unknown KPREFIX= KCRASH=
else
	printf "error: python3 is missing; run 'make deps' as root\n" >&2
	exit 1
fi
KSRC_PKG=linux-source-$KERNEL
if [ "$KSRC_SUITE" = host ]; then
	KSRC_TARBALL=${KSRC_TARBALL:-/usr/src/$KSRC_PKG.tar.xz}
else
	KSRC_TARBALL=${KSRC_TARBALL:-$BUILD/src/$KSRC_PKG.tar.xz}
fi
KTREE=$BUILD/linux$KSUFFIX          # git tree: base commit + the series
KBASE=$BUILD/linux$KSUFFIX-base     # git worktree at the base commit
PATCHDIR=$TOP/patches/$KERNEL       # the series, as git format-patch wrote it
GUESTBIN=$BUILD/guest$KSUFFIX       # the guest's static helpers
INITRAMFS=$BUILD/initramfs$KSUFFIX  # the guest images, one directory per variant
# The lab configuration: lab.config, and what config/lab-KERNEL.config adds.
LAB_FRAGS=("$TOP/config/lab.config")
[ ! -f "$TOP/config/lab-$KERNEL.config" ] || LAB_FRAGS+=("$TOP/config/lab-$KERNEL.config")
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

# fetch_arm64_debs NAME PKG...: the arm64 .debs of the PKGs and of every
# library package they depend on, transitively, in $BUILD/debs; their file
# names in the array DEBS_FILES.  NAME names the progress line and the log.
#
# apt-cache's recursion also walks into things like perl, debconf, dpkg or
# tar (dependencies of maintainer scripts), which are no libraries.  A name
# filter (lib*) would drop zlib1g, so the filter is Debian's own
# classification instead: keep the packages in Section "libs" (or
# "contrib/libs" ...).  Virtual packages (shown as <name>) have no section
# and drop out.  Over-fetching a library package costs only download time:
# what a caller uses is decided by the NEEDED closure alone.
#
# apt-get download --print-uris names the exact file apt would write, with
# its SHA256, without touching the network, so an up-to-date run works
# offline and a truncated or stale file in the cache is fetched again.
fetch_arm64_debs() {
	local name=$1 cands pkgs uris line file hash sum missing p f
	shift
	need_cmd apt-get apt-cache dpkg sha256sum
	dpkg --print-foreign-architectures | grep -qx arm64 ||
		die "dpkg has no arm64 architecture; run 'dpkg --add-architecture arm64 && apt-get update' as root"
	mapfile -t cands < <(
		apt-cache depends --recurse --no-recommends --no-suggests --no-conflicts \
			--no-breaks --no-replaces --no-enhances "${@/%/:arm64}" 2>/dev/null |
			sed -n 's/^\([a-z0-9][a-z0-9.+-]*\):arm64$/\1/p' | LC_ALL=C sort -u
	)
	mapfile -t pkgs < <(
		{
			printf '%s\n' "$@"
			[ ${#cands[@]} -eq 0 ] ||
				apt-cache show --no-all-versions "${cands[@]/%/:arm64}" 2>/dev/null |
				awk '/^Package: / { p = $2 } /^Section: / && $2 ~ /(^|\/)libs$/ { print p }'
		} | LC_ALL=C sort -u
	)
	for p in "$@"; do
		printf '%s\n' "${cands[@]}" | grep -qx "$p" ||
			die "apt knows no '$p:arm64'; run 'apt-get update' as root (with the arm64 architecture added)"
	done

	mkdir -p "$BUILD/debs"
	mapfile -t uris < <(apt-get download --print-uris "${pkgs[@]/%/:arm64}")
	[ ${#uris[@]} -eq ${#pkgs[@]} ] ||
		die "apt-get download --print-uris listed ${#uris[@]} files for ${#pkgs[@]} packages"
	DEBS_FILES=()
	missing=()
	for line in "${uris[@]}"; do
		read -r _ file _ hash <<<"$line"
		sum=${hash#SHA256:}
		DEBS_FILES+=("$file")
		if [ -f "$BUILD/debs/$file" ] &&
			[ "$(sha256sum <"$BUILD/debs/$file" | cut -d' ' -f1)" = "$sum" ]; then
			continue
		fi
		rm -f "$BUILD/debs/$file"
		missing+=("${file%%_*}:arm64")
	done
	[ ${#missing[@]} -gt 0 ] || return 0
	progress "$name: downloading ${#missing[@]} of ${#pkgs[@]} arm64 packages (log: $LOGS/$name-apt.log)"
	# A subshell, so that the cd does not outlive the download.
	run_logged "$LOGS/$name-apt.log" bash -c 'cd "$1" && shift && apt-get download "$@"' \
		_ "$BUILD/debs" "${missing[@]}"
	for f in "${DEBS_FILES[@]}"; do
		[ -f "$BUILD/debs/$f" ] || die "apt-get download did not produce $BUILD/debs/$f; see $LOGS/$name-apt.log"
	done
}

# fetch_source: for a kernel line whose source package lives in another
# Debian suite than the host's (KSRC_SUITE), download the version named in
# lab/source-version-$KERNEL with a private apt configuration under
# build/src/apt (the host's sources and lists stay as they are), check it
# against the suite's SHA256, and unpack its tarball to $KSRC_TARBALL.
# Nothing happens when the tarball is already there.
# private_apt DIR "LINE" LOG: a fresh apt configuration of its own in DIR
# (lists, cache) with the one sources.list line LINE, its lists fetched
# (log: LOG); its options in the array APT_CONF.  The host's apt sources
# and lists stay as they are.
private_apt() {
	local dir=$1
	rm -rf "$dir"
	mkdir -p "$dir/lists/partial" "$dir/cache/archives/partial"
	echo "$2" >"$dir/sources.list"
	APT_CONF=(-o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o Dir::State::Lists="$dir/lists" -o Dir::Cache="$dir/cache"
		-o APT::Sandbox::User=root)
	run_logged "$3" apt-get "${APT_CONF[@]}" update
}

fetch_source() {
	local want dir debs deb
	[ "$KSRC_SUITE" != host ] || return 0
	[ ! -f "$KSRC_TARBALL" ] || return 0
	need_cmd apt-get dpkg-deb
	want=$(cat "$TOP/lab/source-version-$KERNEL")
	dir=$BUILD/src/apt
	progress "fetching $KSRC_PKG $want from Debian's $KSRC_SUITE (private apt lists in ${dir#"$TOP"/})"
	private_apt "$dir" "deb http://deb.debian.org/debian $KSRC_SUITE main" \
		"$LOGS/source$KSUFFIX-apt.log"
	mkdir -p "$dir/debs"
	# apt-get download checks the file against the suite's SHA256.
	run_logged "$LOGS/source$KSUFFIX-download.log" bash -c 'cd "$1" && shift && apt-get "$@"' _ \
		"$dir/debs" "${APT_CONF[@]}" download "$KSRC_PKG=$want"
	debs=("$dir"/debs/"${KSRC_PKG}"_*.deb)
	deb=${debs[0]}
	[ -f "$deb" ] || die "apt-get download left no $KSRC_PKG .deb; see $LOGS/source$KSUFFIX-download.log"
	run_logged "$LOGS/source$KSUFFIX-unpack.log" dpkg-deb -x "$deb" "$dir/x"
	[ -f "$dir/x/usr/src/$KSRC_PKG.tar.xz" ] || die "$deb holds no usr/src/$KSRC_PKG.tar.xz"
	mv "$dir/x/usr/src/$KSRC_PKG.tar.xz" "$KSRC_TARBALL"
	echo "$want" >"$KSRC_TARBALL.version"
	rm -rf "$dir"
	progress "$KSRC_PKG $want: $(du -m "$KSRC_TARBALL" | cut -f1) MB in ${KSRC_TARBALL#"$TOP"/}"
}
