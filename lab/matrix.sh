#!/bin/bash
# make matrix: does every patch build on every arm64 configuration the
# series must support?  Prints one TAP line per (configuration, patch) and
# a table, configuration by patch, into build/logs/matrix.md.
#
# Configurations: lab.config; lab.config plus each config/NAME.config and
# config/build/NAME.config (page sizes and VA sizes, MTE, no kexec, no DMA
# zones, KFENCE); and arm64 defconfig.  For each one and each commit of the
# series, in a worktree of its own (build/linux-matrix):
#   1. every object of arch/arm64/mm, arch/arm64/kernel and kernel/ (where
#      the series' files and the users of its headers are) is built;
#   2. the .c files the series touches that this configuration builds are
#      rebuilt with -Werror.
# The last commit is also linked into an Image, except with defconfig (all
# of arm64's drivers; its objects are checked, not linked).
# MATRIX_CONFIGS="lab g64k42 ..." limits the configurations.
. "$(dirname "$0")/lib.sh"
need_cmd git make "${CROSS}gcc" ccache

wt=$BUILD/linux-matrix
cd "$KTREE"
[ -e "$wt/.git" ] || git worktree add -q --detach "$wt" base
commits=$(git rev-list --reverse base..series)
touched=$(git diff --name-only base series -- '*.c' | grep -v '^tools/' || true)

all="lab"
for f in "$TOP"/config/*.config "$TOP"/config/build/*.config; do
	n=$(basename "$f" .config)
	[ "$n" = lab ] || all="$all $n"
done
all="$all defconfig"
configs=${MATRIX_CONFIGS:-$all}

export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST=matrix LOCALVERSION=
kmake() {
	make -C "$wt" O="$1" ARCH=arm64 CROSS_COMPILE="$CROSS" \
		CC="ccache ${CROSS}gcc" -j"$(nproc)" "${@:2}"
}

frag_of() {
	local f
	for f in "$TOP/config/$1.config" "$TOP/config/build/$1.config"; do
		[ -f "$f" ] && { echo "$f"; return; }
	done
}

table=$LOGS/matrix.md
{
	printf '| configuration |'
	for c in $commits; do printf ' %s |' "$(git log -1 --format=%h "$c")"; done
	printf ' Image |\n|---|'
	for c in $commits; do printf -- '---|'; done
	printf -- '---|\n'
} >"$table"
fail=0
for cfg in $configs; do
	out=_out-m-$cfg
	row="| $cfg |"
	n=0
	for c in $commits; do
		n=$((n + 1))
		git -C "$wt" checkout -q --detach "$c"
		log=$LOGS/matrix-$cfg-$n.log
		if [ "$n" = 1 ]; then
			case $cfg in
			defconfig)
				kmake "$out" defconfig >"$log" 2>&1 || die "defconfig failed; log: $log" ;;
			lab)
				configure "$wt" "$out" "matrix-$cfg" "$TOP/config/lab.config" ;;
			*)
				frag=$(frag_of "$cfg")
				[ -n "$frag" ] || die "unknown configuration $cfg"
				configure "$wt" "$out" "matrix-$cfg" "$TOP/config/lab.config" "$frag" ;;
			esac
		fi
		progress "matrix: $cfg, patch $n"
		objs=""
		ok=1
		if kmake "$out" olddefconfig arch/arm64/mm/ arch/arm64/kernel/ kernel/ >>"$log" 2>&1; then
			for f in $touched; do
				[ -f "$wt/$out/${f%.c}.o" ] && objs="$objs ${f%.c}.o"
			done
			[ -z "$objs" ] || kmake "$out" KCFLAGS=-Werror $objs >>"$log" 2>&1 || ok=0
		else
			ok=0
		fi
		subj=$(git log -1 --format=%s "$c")
		if [ $ok = 1 ]; then
			echo "ok - builds ($cfg, -Werror on${objs:- nothing}): $subj"
			row="$row ok |"
		else
			echo "not ok - builds ($cfg): $subj (log: $log)"
			row="$row FAIL |"
			fail=1
		fi
	done
	if [ "$cfg" = defconfig ]; then
		row="$row objects only |"
	elif kmake "$out" Image >>"$log" 2>&1; then
		echo "ok - links an Image ($cfg): $(git log -1 --format=%s series)"
		row="$row ok |"
	else
		echo "not ok - links an Image ($cfg) (log: $log)"
		row="$row FAIL |"
		fail=1
	fi
	echo "$row" >>"$table"
done
progress "matrix: table in $table"
cat "$table"
exit $fail
