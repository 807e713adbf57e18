#!/bin/bash
# build.sh VARIANT: cross-build arch/arm64/boot/Image for VARIANT.
# lab/variants.py says what each variant is (tree, output directory,
# config fragments).  make decides what to rebuild; an unchanged tree
# costs seconds.
. "$(dirname "$0")/lib.sh"
need_cmd "${CROSS}gcc" ccache make bc bison flex

variant=${1:?usage: build.sh VARIANT (see lab/variants.py list)}
vars=$(python3 "$TOP/lab/variants.py" shell "$variant") || exit 1
eval "$vars"
[ -f "$src/Makefile" ] || die "$src is missing; run 'make tree' first"

out=$src/$outdir
export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST="$variant" LOCALVERSION=
kmake=(make -C "$src" O="$outdir" ARCH=arm64 CROSS_COMPILE="$CROSS"
	CC="ccache ${CROSS}gcc" -j"$(nproc)")
configure "$src" "$outdir" "$variant$KSUFFIX" "${frags[@]}"

log=$LOGS/build-$variant$KSUFFIX.log
progress "$variant$KSUFFIX: building Image (log: ${log#"$TOP"/})"
run_logged "$log" "${kmake[@]}" Image
progress "$variant$KSUFFIX: $(ls -l "$out/arch/arm64/boot/Image" | awk '{print $5}') bytes, $(cat "$out/include/config/kernel.release")"
