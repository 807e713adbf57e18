#!/bin/bash
# make check: every patch passes checkpatch.pl --strict, and the tree
# builds (and so boots the same Image the lab tests) after every patch in
# turn.  The per-patch builds use a worktree of their own, build/linux-bisect.
. "$(dirname "$0")/lib.sh"
need_cmd git perl

cd "$KTREE"
fail=0
for p in "$TOP"/patches/[0-9][0-9][0-9][0-9]-*.patch; do
	case $(basename "$p") in 0000-*) continue ;; esac
	if perl scripts/checkpatch.pl --strict --no-tree -q "$p" >"$LOGS/checkpatch.log" 2>&1; then
		echo "ok - checkpatch --strict: $(basename "$p")"
	else
		echo "not ok - checkpatch --strict: $(basename "$p")"
		sed 's/^/# /' "$LOGS/checkpatch.log"
		fail=1
	fi
done

bis=$BUILD/linux-bisect
[ -e "$bis/.git" ] || git worktree add -q --detach "$bis" base
export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST=bisect LOCALVERSION=
for c in $(git rev-list --reverse base..HEAD); do
	subj=$(git log -1 --format=%s "$c")
	git -C "$bis" checkout -q --detach "$c"
	progress "check: building after '$subj'"
	mkdir -p "$bis/_out"
	[ -f "$bis/_out/.config" ] || cp "$KTREE/_out/.config" "$bis/_out/.config"
	if make -C "$bis" O=_out ARCH=arm64 CROSS_COMPILE="$CROSS" \
		CC="ccache ${CROSS}gcc" -j"$(nproc)" olddefconfig Image \
		>"$LOGS/check-build.log" 2>&1; then
		echo "ok - builds: $subj"
	else
		echo "not ok - builds: $subj (log: $LOGS/check-build.log)"
		fail=1
	fi
done
exit $fail
