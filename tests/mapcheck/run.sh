#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side unit tests of the linear-map parser, the core of the arm64 kdump
# kselftest (tools/testing/selftests/arm64/kdump/linear_map.c), and of the
# lab's reporter built on it (lab/guest/linmap.c).
#
# Usage: run.sh path/to/kernel/tree    (the lab's is build/linux)
#
# Builds, with the host gcc:
#  - linmap from lab/guest/linmap.c and the tree's linear_map.c, and checks
#    it against every data/NAME.ptdump + NAME.iomem + NAME.expect triple:
#    each "key=value" line of NAME.expect must appear exactly as a line of
#    linmap's output; lines starting with '#' and empty lines are comments.
#    The sample is read with the page size of its page_size= line, 4096
#    without one;
#  - the kselftest (crash_linear_map.c + linear_map.c) with -Wall -Wextra
#    -Werror, to be sure it compiles cleanly.  It reads the live files only,
#    so it is not run here.
# Inputs linmap cannot use must give one "error=" line and exit status 2.
# Prints TAP and exits non-zero if any check fails.

set -u

here=$(cd "$(dirname "$0")" && pwd)
tree=${1:?usage: run.sh path/to/kernel/tree (build/linux)}
kdir=$tree/tools/testing/selftests/arm64/kdump
linmap_src=$here/../../lab/guest/linmap.c
data=$here/data

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prog=$tmp/linmap

n=0
failed=0

ok() {
	n=$((n + 1))
	echo "ok $n - $*"
}

not_ok() {
	n=$((n + 1))
	failed=$((failed + 1))
	echo "not ok $n - $*"
}

check() {
	local desc=$1
	shift
	if "$@"; then ok "$desc"; else not_ok "$desc"; fi
}

# compile DESC OUTPUT SOURCES...: host build with -Wall -Wextra -Werror
compile() {
	local desc=$1 out=$2
	shift 2
	if gcc -Wall -Wextra -Werror -O2 -I"$kdir" -I"$tree/tools/testing/selftests" \
		-o "$out" "$@" 2> "$tmp/cc.log"; then
		ok "$desc"
		return 0
	fi
	sed 's/^/# /' "$tmp/cc.log"
	not_ok "$desc"
	return 1
}

# errors_out DESC ARGS...: linmap ARGS must print one error= line, exit 2
errors_out() {
	local desc=$1 rc
	shift
	"$prog" "$@" > "$tmp/err.out" 2>&1
	rc=$?
	if [ $rc -eq 2 ] && [ "$(wc -l < "$tmp/err.out")" -eq 1 ] &&
	   grep -q '^error=.' "$tmp/err.out"; then
		ok "$desc"
	else
		sed 's/^/# got: /' "$tmp/err.out"
		not_ok "$desc (exit status $rc)"
	fi
}

echo "TAP version 13"

compile "compile the kselftest arm64/kdump/crash_linear_map" \
	"$tmp/crash_linear_map" "$kdir/crash_linear_map.c" "$kdir/linear_map.c"
if ! compile "compile lab/guest/linmap.c with arm64/kdump/linear_map.c" \
	"$prog" "$linmap_src" "$kdir/linear_map.c"; then
	echo "1..$n"
	exit 1
fi

iomem=$(ls "$data"/*.iomem 2> /dev/null | head -n 1)
ptdump=${iomem%.iomem}.ptdump
printf 'not a ptdump\n' > "$tmp/empty.ptdump"
sed 's/^\( *\)[0-9a-f]*-[0-9a-f]*/\100000000-00000000/' "$iomem" \
	> "$tmp/hidden.iomem"
errors_out "missing ptdump file: error=, exit 2" \
	--ptdump "$tmp/missing" --iomem "$iomem" --page-size 4096
errors_out "ptdump without Linear Mapping: error=, exit 2" \
	--ptdump "$tmp/empty.ptdump" --iomem "$iomem" --page-size 4096
errors_out "iomem without addresses (not root): error=, exit 2" \
	--ptdump "$ptdump" --iomem "$tmp/hidden.iomem" --page-size 4096
errors_out "bad page size: error=, exit 2" \
	--ptdump "$ptdump" --iomem "$iomem" --page-size 5000
errors_out "unknown option: error=, exit 2" --bogus

samples=0
for ptdump in "$data"/*.ptdump; do
	[ -e "$ptdump" ] || continue
	name=$(basename "$ptdump" .ptdump)
	iomem=$data/$name.iomem
	expect=$data/$name.expect
	samples=$((samples + 1))

	if [ ! -r "$iomem" ] || [ ! -r "$expect" ]; then
		not_ok "$name: needs $name.iomem and $name.expect"
		continue
	fi

	report=$tmp/$name.report
	psize=$(sed -n 's/^page_size=//p' "$expect")
	"$prog" --ptdump "$ptdump" --iomem "$iomem" --page-size "${psize:-4096}" \
		> "$report" 2>&1
	rc=$?
	if [ $rc -ne 0 ]; then
		sed 's/^/# /' "$report"
		not_ok "$name: linmap exit status $rc"
		continue
	fi

	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		"" | "#"*)
			continue ;;
		*=*)
			if grep -qxF -- "$line" "$report"; then
				ok "$name: $line"
			else
				grep "^${line%%=*}=" "$report" |
					sed 's/^/# got: /'
				not_ok "$name: $line"
			fi ;;
		*)
			not_ok "$name: bad line in $name.expect: $line" ;;
		esac
	done < "$expect"
done

check "found samples in $data" test "$samples" -gt 0

echo "1..$n"
if [ $failed -ne 0 ]; then
	echo "# $failed of $n checks failed"
	exit 1
fi
echo "# all $n checks passed"
