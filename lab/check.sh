#!/bin/bash
# make check: every patch passes checkpatch.pl --strict, and the tree
# builds (and so boots the same Image the lab tests) after every patch in
# turn; it also builds, with -Werror, without kexec
# (config/build/nokexec.config).  Every other configuration (page and VA
# sizes, MTE, no DMA zones, defconfig) is built per patch by lab/matrix.sh.
# The per-patch builds use a worktree of their own, build/linux-bisect.
. "$(dirname "$0")/lib.sh"
need_cmd git perl

[ -f "$INITRAMFS/series/first.cpio.gz" ] || die "run 'make guest' first"
cd "$KTREE"
fail=0
for p in "$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch; do
	case $(basename "$p") in 0000-*) continue ;; esac
	# From the tree, as maintainers run it: the checks that read the tree
	# (headers, includes, CamelCase of the kernel's own names) run too.
	if perl scripts/checkpatch.pl --strict -q "$p" >"$LOGS/checkpatch$KSUFFIX.log" 2>&1; then
		echo "ok - checkpatch --strict: $(basename "$p")"
	else
		echo "not ok - checkpatch --strict: $(basename "$p")"
		sed 's/^/# /' "$LOGS/checkpatch$KSUFFIX.log"
		fail=1
	fi
done

bis=$BUILD/linux$KSUFFIX-bisect
[ -e "$bis/.git" ] || git worktree add -q --detach "$bis" base
export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST=bisect LOCALVERSION=
n=0
for c in $(git rev-list --reverse base..HEAD); do
	n=$((n + 1))
	subj=$(git log -1 --format=%s "$c")
	blog=$LOGS/check-build$KSUFFIX-$n.log
	git -C "$bis" checkout -q --detach "$c"
	progress "check: building after '$subj'"
	mkdir -p "$bis/_out"
	if [ ! -f "$bis/_out/.config" ]; then
		vars=$(python3 "$TOP/lab/variants.py" shell series) || exit 1
		eval "$vars"   # the series' own config: $src/$outdir/.config
		cp "$src/$outdir/.config" "$bis/_out/.config"
	fi
	if ! make -C "$bis" O=_out ARCH=arm64 CROSS_COMPILE="$CROSS" \
		CC="ccache ${CROSS}gcc" -j"$(nproc)" olddefconfig Image \
		>"$blog" 2>&1; then
		echo "not ok - builds: $subj (log: $blog)"
		fail=1
		continue
	fi
	echo "ok - builds: $subj"
	# Without kexec (on top of lab.config), with -Werror.
	for frag in "$TOP"/config/build/nokexec.config; do
		[ -e "$frag" ] || continue
		name=$(basename "$frag" .config)
		configure "$bis" "_out-$name" "check-$name$KSUFFIX" "${LAB_FRAGS[@]}" "$frag"
		if make -C "$bis" O="_out-$name" ARCH=arm64 CROSS_COMPILE="$CROSS" \
			CC="ccache ${CROSS}gcc" KCFLAGS=-Werror -j"$(nproc)" olddefconfig Image \
			>"$LOGS/check-build$KSUFFIX-$n-$name.log" 2>&1; then
			echo "ok - builds ($name, -Werror): $subj"
		else
			echo "not ok - builds ($name, -Werror): $subj (log: $LOGS/check-build$KSUFFIX-$n-$name.log)"
			fail=1
		fi
	done
	# ... and boots: crashkernel=512M, kexec -p, crash, capture (the
	# capture kernel is the series' one, from the series initramfs).
	# The verdict is the one make test uses: checks.check_boot() and
	# checks.check_capture().
	if python3 - "$bis/_out/arch/arm64/boot/Image" "$TOP/lab" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import checks as C
import lab
import variants
# The rodata= that keeps the linear map in blocks on this kernel line.
r = lab.run_guest("check-bisect", "series", "8G",
                  "rodata=%s crashkernel=512M" % variants.LINE["rodata"],
                  ["load-c", "crash"], kernel=sys.argv[1], timeout=180)
c = C.Checker("check-bisect", "series")
if C.check_boot(c, r):
    C.check_capture(c, r)
bad = ["%s (%s)" % (n, d) for n, ok, d in c.results if not ok]
print("# %s in %.0fs; console: %s" % (r.outcome, r.seconds, r.console))
for b in bad:
    print("# failed: " + b)
sys.exit(1 if bad else 0)
PY
	then
		echo "ok - boots, kexec -p, crash, capture: $subj"
	else
		echo "not ok - boots, kexec -p, crash, capture: $subj"
		fail=1
	fi
done
exit $fail
