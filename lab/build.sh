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
mkdir -p "$out"
frag=$out/.lab-fragment
# Merge the fragments; a symbol set by a later one overrides earlier ones.
cat "${frags[@]}" | awk '
	{ sym = "" }
	/^CONFIG_[A-Z0-9_]+=/ { sym = $0; sub(/=.*/, "", sym) }
	/^# CONFIG_[A-Z0-9_]+ is not set/ { sym = $2 }
	{ line[NR] = $0; key[NR] = sym; if (sym != "") last[sym] = NR }
	END { for (i = 1; i <= NR; i++) if (key[i] == "" || last[key[i]] == i) print line[i] }
' >"$frag.new"
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
