#!/bin/bash
# record-test.sh: run 'make test' for $KERNEL and keep its whole output,
# progress lines and TAP, in bench/results/$KERNEL/test.txt with a header
# naming the host, the source and the series commit.  The README and cover
# letters quote their test figures from that file.
set -uo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
KERNEL=${KERNEL:-6.1}
out=$TOP/bench/results/$KERNEL/test.txt
mkdir -p "$(dirname "$out")"
# The lab's commit, and whether the run had changes not yet committed.
lab=$(git -C "$TOP" rev-parse --short=12 HEAD)
git -C "$TOP" diff --quiet HEAD -- lab tests bench config Makefile || lab="$lab plus uncommitted changes"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
make -C "$TOP" --no-print-directory test KERNEL="$KERNEL" >"$tmp" 2>&1
rc=$?
tree=$(cd "$TOP" && KERNEL=$KERNEL python3 -c 'import sys; sys.path.insert(0, "lab"); import variants; print(variants.TREES["series"])')
{
	echo "# make test KERNEL=$KERNEL, run $(date -u +%F) on a $(nproc)-core $(. /etc/os-release; echo "$PRETTY_NAME") host, $(qemu-system-aarch64 --version | head -n 1)"
	echo "# source: $(cat "$TOP/lab/source-version-$KERNEL" 2>/dev/null || echo host); series: patches/$KERNEL at $(git -C "$tree" rev-parse --short=12 HEAD); lab: $lab"
	echo "# exit status $rc; progress lines (stderr) first, then TAP"
	cat "$tmp"
} >"$out"
tail -n 1 "$out"
echo "written: ${out#"$TOP"/}"
exit "$rc"
