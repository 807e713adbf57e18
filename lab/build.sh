#!/bin/bash
# build.sh VARIANT: cross-build arch/arm64/boot/Image for VARIANT.
#   base    build/linux-base (Debian 6.1 with no patches)
#   series  build/linux      (base + patches/)
#   kfence  build/linux with config/kfence.config too (make test-full)
# Output goes to <tree>/_out, inside each tree, so that both builds see the
# same relative paths and ccache shares every object the series did not
# touch.  make decides what to rebuild; an unchanged tree costs seconds.
. "$(dirname "$0")/lib.sh"
need_cmd "${CROSS}gcc" ccache make bc bison flex

variant=${1:?usage: build.sh base|series|kfence}
outdir=_out
frags=("$TOP/config/lab.config")
case $variant in
base) src=$KBASE ;;
series) src=$KTREE ;;
kfence) src=$KTREE outdir=_out-kfence frags+=("$TOP/config/kfence.config") ;;
*) die "unknown variant '$variant' (expected base, series or kfence)" ;;
esac
[ -f "$src/Makefile" ] || die "$src is missing; run 'make tree' first"

out=$src/$outdir
mkdir -p "$out"
frag=$out/.lab-fragment
cat "${frags[@]}" >"$frag.new"
cmp -s "$frag.new" "$frag" || mv "$frag.new" "$frag"
rm -f "$frag.new"
export CCACHE_NOHASHDIR=1 KBUILD_BUILD_TIMESTAMP="2026-01-01" \
	KBUILD_BUILD_USER=lab KBUILD_BUILD_HOST="$variant" LOCALVERSION=
kmake=(make -C "$src" O="$outdir" ARCH=arm64 CROSS_COMPILE="$CROSS"
	CC="ccache ${CROSS}gcc" -j"$(nproc)")

sum=$(sha256sum "$frag" | cut -d' ' -f1)
if [ ! -f "$out/.config" ] || [ "$(cat "$out/.lab-config" 2>/dev/null)" != "$sum" ]; then
	progress "$variant: configuring (allnoconfig + ${frags[*]#$TOP/})"
	run_logged "$LOGS/config-$variant.log" "${kmake[@]}" KCONFIG_ALLCONFIG="$frag" allnoconfig
	# Every line of the fragment must have survived Kconfig's dependencies.
	bad=$(grep -E '^(CONFIG_[A-Z0-9_]+=|# CONFIG_[A-Z0-9_]+ is not set)' "$frag" |
		while read -r line; do grep -qxF "$line" "$out/.config" || echo "$line"; done)
	[ -z "$bad" ] || die "config fragment lines not honoured by Kconfig: $bad"
	echo "$sum" >"$out/.lab-config"
fi

progress "$variant: building Image (log: build/logs/build-$variant.log)"
run_logged "$LOGS/build-$variant.log" "${kmake[@]}" Image
progress "$variant: $(ls -l "$out/arch/arm64/boot/Image" | awk '{print $5}') bytes, $(cat "$out/include/config/kernel.release")"
