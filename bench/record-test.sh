#!/bin/bash
# record-test.sh [TARGET]: run 'make TARGET' (test, the default, or check)
# for $KERNEL and keep its whole output, progress lines and TAP, in
# bench/results/$KERNEL/TARGET.txt with a header naming the host, the
# source, the series commit and the lab commit.  The README and cover
# letters quote their test figures from those files.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
KERNEL=${KERNEL:-6.1}
target=${1:-test}
case $target in
test | check) ;;
*) echo "error: record-test.sh: unknown target '$target' (test or check)" >&2; exit 2 ;;
esac
out=$TOP/bench/results/$KERNEL/$target.txt
mkdir -p "$(dirname "$out")"
# The lab's commit, and whether the run had changes not yet committed
# (in what the run uses: cover letters are not).
lab=$(git -C "$TOP" rev-parse --short=12 HEAD)
[ -z "$(git -C "$TOP" status --porcelain -- lab tests bench/*.py bench/*.sh config patches Makefile \
	':!patches/*/cover-letter.txt' ':!patches/*/0000-cover-letter.patch')" ] ||
	lab="$lab plus uncommitted changes"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
make -C "$TOP" --no-print-directory "$target" KERNEL="$KERNEL" >"$tmp" 2>&1
rc=$?
tree=$(cd "$TOP" && KERNEL=$KERNEL python3 -c 'import sys; sys.path.insert(0, "lab"); import variants; print(variants.TREES["series"])')
{
	echo "# make $target KERNEL=$KERNEL, run $(date -u +%F) on a $(nproc)-core $(. /etc/os-release; echo "$PRETTY_NAME") host, $(qemu-system-aarch64 --version | head -n 1)"
	echo "# source: $(cat "$TOP/lab/source-version-$KERNEL" 2>/dev/null || echo host); series: patches/$KERNEL at $(git -C "$tree" rev-parse --short=12 HEAD); lab: $lab"
	echo "# exit status $rc; progress lines (stderr) and TAP, as they came"
	cat "$tmp"
} >"$out"
echo "$(grep -c '^ok ' "$out") ok, $(grep -c '^not ok ' "$out") not ok; exit status $rc"
echo "written: ${out#"$TOP"/}"
exit "$rc"
