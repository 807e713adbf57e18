#!/bin/bash
# make matrix: does every patch build on every arm64 configuration the
# series must support?  Prints one TAP line per (configuration, patch) and
# a table, configuration by patch, into build/logs/matrix.md.
#
# Configurations: lab.config; lab.config plus each config/NAME.config and
# config/build/NAME.config (page sizes and VA sizes, MTE, no kexec, no DMA
# zones, KFENCE); and arm64 defconfig.  For each one, in a worktree of its
# own (build/linux-matrix):
#   1. the last commit is built into an Image; the dependency files then
#      name every object that includes a header the series touches.  The
#      configurations in $objects_only, which no lab target builds whole,
#      build the directories of the lab configuration's list instead
#      (defconfig's Image would be all of arm64's drivers), and take the
#      list from that build;
#   2. for each commit of the series in turn, those objects and the .c
#      files the series touches are rebuilt, the latter with -Werror.
# MATRIX_CONFIGS="lab g64k42 ..." limits the configurations.
#
# A cold run of every configuration takes longer than one working session
# on two cores, so each configuration's row is kept as soon as it is done,
# in bench/results/matrix$KSUFFIX/NAME.md with the series it was built for
# (a hash of the patch files, the same on any machine), and the committed
# table, bench/results/matrix$KSUFFIX.md, is put together from the rows of
# the current series: a configuration without one reads "not run".  Runs
# over parts of the list add up; a row of another series is never used.
. "$(dirname "$0")/lib.sh"
need_cmd git make "${CROSS}gcc" ccache

wt=$BUILD/linux$KSUFFIX-matrix
cd "$KTREE"
[ -e "$wt/.git" ] || git worktree add -q --detach "$wt" base
commits=$(git rev-list --reverse base..series)
touched=$(git diff --name-only base series -- '*.c' | grep -v '^tools/' || true)

all="lab"
for f in "$TOP"/config/*.config "$TOP"/config/build/*.config "$TOP"/config/$KERNEL/*.config; do
	[ -f "$f" ] || continue
	n=$(basename "$f" .config)
	case $n in lab | lab-*) ;; *) all="$all $n" ;; esac
done
all="$all defconfig"
configs=${MATRIX_CONFIGS:-$all}
objects_only="g16k48 g64k52 defconfig"

export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST=matrix LOCALVERSION=
kmake() {
	make -C "$wt" O="$1" ARCH=arm64 CROSS_COMPILE="$CROSS" \
		CC="ccache ${CROSS}gcc" -j"$(nproc)" "${@:2}"
}

frag_of() {
	local f
	for f in "$TOP/config/$1.config" "$TOP/config/build/$1.config" "$TOP/config/$KERNEL/$1.config"; do
		[ -f "$f" ] && { echo "$f"; return; }
	done
}

headers=$(git diff --name-only base series -- '*.h' | grep -v '^tools/' || true)
last=$(git rev-parse series)

# users_of OUTDIR: the objects (from kbuild's dependency files in OUTDIR)
# that include a header the series touches.
users_of() {
	# grep finds no user of some header: not an error (set -e, pipefail).
	(cd "$wt/$1" || exit 1
	for h in $headers; do
		grep -l -- "$h" $(find . -name '.*.o.cmd') 2>/dev/null || true
	done | sed 's|^\./||; s|/\.\([^/]*\)\.cmd$|/\1|; s|^\.\([^/]*\)\.cmd$|\1|' | sort -u)
}

table=$LOGS/matrix$KSUFFIX.md
rows=$TOP/bench/results/matrix$KSUFFIX
mkdir -p "$rows"
# The series' id: its patches (not the cover letter, whose figures change
# without the code), without git's commit ids.
series_id=$(for p in "$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch; do
		case $(basename "$p") in 0000-*) ;; *) grep -v '^From [0-9a-f]\{40\} ' "$p" ;; esac
	done | sha256sum | cut -c1-16)
{
	printf '| configuration | last commit |'
	# Patch numbers, not commit ids: the rows outlive the tree.
	i=0
	for c in $commits; do i=$((i + 1)); printf ' %d |' "$i"; done
	printf '\n|---|---|'
	for c in $commits; do printf -- '---|'; done
	printf '\n'
} >"$table"
fail=0
for cfg in $configs; do
	# The lab's own output directory names, so that ccache shares the
	# objects of the lab's builds of the same configuration.
	out=_out-$cfg
	[ "$cfg" = lab ] && out=_out
	log=$LOGS/matrix-$cfg$KSUFFIX.log
	: >"$log"
	git -C "$wt" checkout -q --detach "$last"
	case $cfg in
	defconfig)
		kmake "$out" defconfig >>"$log" 2>&1 || die "defconfig failed; log: $log" ;;
	lab)
		configure "$wt" "$out" "matrix-$cfg$KSUFFIX" "${LAB_FRAGS[@]}" ;;
	*)
		frag=$(frag_of "$cfg")
		[ -n "$frag" ] || die "unknown configuration $cfg"
		configure "$wt" "$out" "matrix-$cfg$KSUFFIX" "${LAB_FRAGS[@]}" "$frag" ;;
	esac
	progress "matrix: $cfg, the last commit"
	deps=$out
	if [[ " $objects_only " == *" $cfg "* ]]; then
		what="objects"
		deps=_out
		[ -d "$wt/_out" ] || die "run the lab configuration first (MATRIX_CONFIGS=lab)"
	else
		what="Image"
	fi
	if [ "$what" = Image ]; then
		kmake "$out" olddefconfig Image >>"$log" 2>&1 && lastres=ok || lastres=FAIL
	else
		# The directories of the lab's header users: building a
		# directory builds only what this configuration selects.
		dirs=$(users_of "$deps" | xargs -n1 dirname | sort -u | sed 's|$|/|')
		kmake "$out" olddefconfig $dirs >>"$log" 2>&1 && lastres=ok || lastres=FAIL
	fi
	if [ $lastres = ok ]; then
		echo "ok - builds ($cfg, $what): the series"
	else
		echo "not ok - builds ($cfg, $what): the series (log: $log)"
		fail=1
	fi
	row="| $cfg | $what $lastres |"
	users=$(users_of "$out")
	mine=""
	for f in $touched; do
		[ -f "$wt/$out/${f%.c}.o" ] && mine="$mine ${f%.c}.o"
	done
	n=0
	for c in $commits; do
		n=$((n + 1))
		git -C "$wt" checkout -q --detach "$c"
		progress "matrix: $cfg, patch $n ($(echo $users | wc -w) objects)"
		ok=1
		# A cell that rebuilds nothing proves nothing: no header users and
		# none of the series' files in this configuration fails.
		[ -n "$users$mine" ] || { ok=0; echo "no objects to build for $cfg" >>"$log"; }
		if [ -n "$users" ]; then
			# An object whose source this commit does not have yet is skipped.
			objs=$(for o in $users; do
					[ -f "$wt/${o%.o}.c" ] || [ -f "$wt/${o%.o}.S" ] && echo "$o"
				done)
			kmake "$out" olddefconfig $objs >>"$log" 2>&1 || ok=0
		fi
		[ $ok = 0 ] || [ -z "$mine" ] || kmake "$out" KCFLAGS=-Werror $mine >>"$log" 2>&1 || ok=0
		subj=$(git log -1 --format=%s "$c")
		if [ $ok = 1 ]; then
			echo "ok - builds ($cfg, -Werror on${mine:- nothing}): $subj"
			row="$row ok |"
		else
			echo "not ok - builds ($cfg): $subj (log: $log)"
			row="$row FAIL |"
			fail=1
		fi
	done
	echo "$row" >>"$table"
	printf '%s\n%s\n' "<!-- series $series_id, $(date -u +%Y-%m-%d), $(${CROSS}gcc --version | head -n 1) -->" \
		"$row" >"$rows/$cfg.md"
done
# The table of every configuration's row for this series; committed
# (bench/results/matrix$KSUFFIX.md) only once every configuration has one,
# so that a run over part of the list never replaces a whole table.
missing=""
for cfg in $all; do
	f=$rows/$cfg.md
	[ -f "$f" ] && head -n 1 "$f" | grep -q "series $series_id," || missing="$missing $cfg"
done
whole=$TOP/bench/results/matrix$KSUFFIX.md
[ -z "$missing" ] || whole=$LOGS/matrix-assembled$KSUFFIX.md
{
	echo "## make matrix results"
	echo
	echo "- command: make matrix$([ "$KERNEL" = 6.1 ] || echo " KERNEL=$KERNEL") (lab/matrix.sh); rows in bench/results/matrix$KSUFFIX/, each from its own run"
	echo "- series: patches/$KERNEL, id $series_id (sha256 of the patch files); source: $(cat "$TOP/lab/source-version-$KERNEL" 2>/dev/null)"
	echo "- per commit: the objects that include a header the series touches, and the series' .c files with -Werror"
	echo
	head -n 2 "$table"
	for cfg in $all; do
		f=$rows/$cfg.md
		if [ -f "$f" ] && head -n 1 "$f" | grep -q "series $series_id,"; then
			sed -n 2p "$f"
		else
			echo "| $cfg | not run on this series |"
		fi
	done
	echo
	echo "Rows run on: $(for cfg in $all; do f=$rows/$cfg.md; [ -f "$f" ] && head -n 1 "$f" | grep -q "series $series_id," && printf '%s %s; ' "$cfg" "$(head -n 1 "$f" | sed 's/.*series [0-9a-f]*, \([0-9-]*\),.*/\1/')"; done)"
} >"$whole"
if [ -n "$missing" ]; then
	progress "matrix: no row for this series yet:$missing; the committed table is unchanged (this run's: $whole)"
else
	progress "matrix: every configuration has a row; wrote ${whole#"$TOP"/}"
fi
progress "matrix: table in $table"
cat "$table"
exit $fail
