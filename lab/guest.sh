#!/bin/bash
# guest.sh VARIANT: build the guest side for VARIANT: the static helpers
# (cntvct and the kdump kselftest binary) and the two initramfs images,
# whose first one carries VARIANT's Image as the capture kernel.
. "$(dirname "$0")/lib.sh"
need_cmd "${CROSS}gcc"

variant=${1:?usage: guest.sh base|series|NAME}
case $variant in
base) image=$KBASE/_out/arch/arm64/boot/Image ;;
series) image=$KTREE/_out/arch/arm64/boot/Image ;;
*) image=$KTREE/_out-$variant/arch/arm64/boot/Image ;;
esac
[ -f "$image" ] || die "$image is missing; run 'lab/build.sh $variant' first"

# The kselftest is part of the series; both variants run the same binary.
st=$KTREE/tools/testing/selftests/kdump/crash_linear_map.c
[ -f "$st" ] || die "$st is missing: the series is not applied (run 'make tree')"

mkdir -p "$BUILD/guest"
for src in "$TOP/lab/guest/cntvct.c" "$st"; do
	bin=$BUILD/guest/$(basename "$src" .c)
	if [ ! -x "$bin" ] || [ "$src" -nt "$bin" ]; then
		progress "guest: cross-building $(basename "$bin") (static)"
		run_logged "$LOGS/guest-cc.log" "${CROSS}gcc" -static -O2 -Wall \
			-I"$(dirname "$src")" -o "$bin" "$src"
	fi
done

"$TOP/lab/initramfs.sh" "$BUILD/initramfs/$variant" --init "$TOP/lab/guest/init" \
	--capture-image "$image" \
	--add "$BUILD/guest/cntvct:/lab/cntvct" \
	--add "$BUILD/guest/crash_linear_map:/lab/crash_linear_map"
