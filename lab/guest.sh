#!/bin/bash
# guest.sh VARIANT: build the guest side for VARIANT: the static helpers
# (cntvct, the arm64 kdump kselftest, linmap and pattern) and the two initramfs images,
# whose first one carries VARIANT's Image as the capture kernel.
. "$(dirname "$0")/lib.sh"
need_cmd "${CROSS}gcc"

variant=${1:?usage: guest.sh VARIANT (see lab/variants.py list)}
vars=$(python3 "$TOP/lab/variants.py" shell "$variant") || exit 1
eval "$vars"
[ -f "$image" ] || die "$image is missing; run 'lab/build.sh $variant' first"

# The kselftest is part of the series; both variants run the same binary,
# and linmap, the lab's reporter, is built on the kselftest's parser.
kd=$KTREE/tools/testing/selftests/arm64/kdump
[ -f "$kd/crash_linear_map.c" ] ||
	die "$kd/crash_linear_map.c is missing: the series is not applied (run 'make tree')"

# build NAME FILES...: a static helper from the .c files among FILES,
# rebuilt when any of FILES is newer.  The kselftest's <linux/kexec.h>
# comes from the cross toolchain (linux-libc-dev-arm64-cross, pulled in by
# libc6-dev-arm64-cross).
build() {
	local bin=$GUESTBIN/$1 f stale=0 srcs=()
	shift
	for f in "$@"; do
		[ -x "$bin" ] && [ ! "$f" -nt "$bin" ] || stale=1
		case $f in *.c) srcs+=("$f") ;; esac
	done
	[ "$stale" = 1 ] || return 0
	progress "guest: cross-building $(basename "$bin") (static)"
	run_logged "$LOGS/guest-cc.log" "${CROSS}gcc" -static -O2 -Wall \
		-I"$kd" -o "$bin" "${srcs[@]}"
}

mkdir -p "$GUESTBIN"
build cntvct "$TOP/lab/guest/cntvct.c"
build crash_linear_map "$kd/crash_linear_map.c" "$kd/linear_map.c" "$kd/linear_map.h"
build linmap "$TOP/lab/guest/linmap.c" "$kd/linear_map.c" "$kd/linear_map.h"
build pattern "$TOP/lab/guest/pattern.c"

"$TOP/lab/initramfs.sh" "$INITRAMFS/$variant" --init "$TOP/lab/guest/init" \
	--capture-image "$image" \
	--add "$GUESTBIN/cntvct:/lab/cntvct" \
	--add "$GUESTBIN/crash_linear_map:/lab/crash_linear_map" \
	--add "$GUESTBIN/linmap:/lab/linmap" \
	--add "$GUESTBIN/pattern:/lab/pattern"
