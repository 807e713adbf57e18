#!/bin/bash
# SPDX-License-Identifier: GPL-2.0
#
# Host-side unit tests for tools/testing/selftests/kdump/crash_linear_map.c.
#
# Usage: run.sh [path/to/crash_linear_map.c]
#
# Builds the program with the host gcc and checks it against every
# data/NAME.ptdump + data/NAME.iomem + data/NAME.expect triple:
#  - each "key=value" line of NAME.expect must appear exactly as a line
#    of "crash_linear_map --report --ptdump NAME.ptdump --iomem NAME.iomem";
#  - each "tap.TEST=ok|not ok|skip" line gives the result TEST must have
#    in the kselftest (TAP) mode on the same files, run with
#    KDUMP_PTE_LIMIT=8M;
#  - lines starting with '#' and empty lines are comments.
# Prints TAP and exits non-zero if any check fails.

set -u

here=$(cd "$(dirname "$0")" && pwd)
src=${1:-$here/../../build/linux/tools/testing/selftests/kdump/crash_linear_map.c}
data=$here/data
pte_limit=8M

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prog=$tmp/crash_linear_map

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

# Print the result (ok, not ok or skip) of one test in a kselftest log
tap_result() {
	local log=$1 name=$2 line

	line=$(grep -E "^(not )?ok [0-9]+ (# SKIP )?$name(:|\$| )" "$log" |
	       head -n 1)
	case $line in
	"") echo missing ;;
	"not ok"*) echo "not ok" ;;
	*"# SKIP "*) echo skip ;;
	*) echo ok ;;
	esac
}

echo "TAP version 13"

if gcc -Wall -Werror -O2 -o "$prog" "$src" 2> "$tmp/cc.log"; then
	ok "compile $src"
else
	sed 's/^/# /' "$tmp/cc.log"
	not_ok "compile $src"
	echo "1..$n"
	exit 1
fi

# Inputs that cannot be used must give exit status 2
printf 'not a ptdump\n' > "$tmp/empty.ptdump"
"$prog" --report --ptdump "$tmp/missing" --iomem /dev/null \
	> /dev/null 2>&1
check "missing ptdump file exits 2" test $? -eq 2
if ls "$data"/*.iomem > /dev/null 2>&1; then
	iomem=$(ls "$data"/*.iomem | head -n 1)
	"$prog" --report --ptdump "$tmp/empty.ptdump" --iomem "$iomem" \
		> /dev/null 2>&1
	check "ptdump without Linear Mapping exits 2" test $? -eq 2
fi

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
	"$prog" --report --ptdump "$ptdump" --iomem "$iomem" \
		> "$report" 2> "$tmp/$name.err"
	rc=$?
	if [ $rc -ne 0 ]; then
		sed 's/^/# /' "$tmp/$name.err"
		not_ok "$name: --report exit status $rc"
		continue
	fi

	log=$tmp/$name.tap
	env -u KDUMP_KERNEL -u KDUMP_SHRINK -u KDUMP_FORCED_PAGES \
		KDUMP_PTE_LIMIT=$pte_limit \
		"$prog" --ptdump "$ptdump" --iomem "$iomem" > "$log" 2>&1
	tap_rc=$?

	while IFS= read -r line || [ -n "$line" ]; do
		case $line in
		"" | "#"*)
			continue ;;
		tap.*=*)
			key=${line%%=*}
			key=${key#tap.}
			want=${line#*=}
			got=$(tap_result "$log" "$key")
			if [ "$got" = "$want" ]; then
				ok "$name: tap $key $want"
			else
				echo "# got: $got"
				not_ok "$name: tap $key $want"
			fi ;;
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

	# The TAP log must be well formed and its exit status must agree
	check "$name: tap plan 1..5" grep -qx '1\.\.5' "$log"
	if grep -q '^not ok ' "$log"; then want_rc=1; else want_rc=0; fi
	check "$name: tap exit status $want_rc" test "$tap_rc" -eq "$want_rc"
done

check "found samples in $data" test "$samples" -gt 0

echo "1..$n"
if [ $failed -ne 0 ]; then
	echo "# $failed of $n checks failed"
	exit 1
fi
echo "# all $n checks passed"
