#!/bin/bash
# crashsrc.sh: build/crash-src/crash, a host (x86-64) `crash` that reads
# arm64 dumps, for the kernel lines Debian 12's crash 8.0.2 cannot read
# (KERNELS in lab/variants.py, crash="source").
#
# The source is Debian's own crash source package (crash and the gdb it
# embeds), fetched with a private apt configuration like the kernel
# sources (the host's apt sources stay as they are); the suite and version
# are in lab/crash-source-version.  dpkg-source checks it against the
# suite's signed index and applies Debian's patches; then `make
# target=ARM64 lzo` (the lab's dumps are makedumpfile -l: LZO), with
# ccache when there is one.  Rebuilt only when the version or this script
# changed; ends by checking that the binary runs.  A cold build, mostly
# gdb, is long: it is done once and kept in build/crash-src.
. "$(dirname "$0")/lib.sh"
need_cmd apt-get dpkg-source make gcc g++ bison flex
for h in gmp.h mpfr.h lzo/lzo1x.h ncurses.h zlib.h; do
	[ -f "/usr/include/$h" ] || [ -f "/usr/include/x86_64-linux-gnu/$h" ] ||
		die "/usr/include/$h is missing; run 'make deps' as root"
done

read -r suite version <"$TOP/lab/crash-source-version" ||
	die "lab/crash-source-version must hold 'SUITE VERSION'"
dir=$BUILD/crash-src
bin=$dir/crash
manifest=$({
	echo "crash $suite $version"
	sha256sum "$0" | sed "s| $TOP/| |"
})
if [ -x "$bin" ] && [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$manifest" ]; then
	exit 0
fi

rm -rf "$dir"
mkdir -p "$dir/dl"
progress "crash: fetching Debian's crash source $version from $suite (private apt lists in ${dir#"$TOP"/}/apt)"
private_apt "$dir/apt" "deb-src http://deb.debian.org/debian $suite main" "$LOGS/crashsrc-apt.log"
run_logged "$LOGS/crashsrc-download.log" bash -c 'cd "$1" && shift && apt-get "$@"' _ \
	"$dir/dl" "${APT_CONF[@]}" source --download-only "crash=$version"
dsc=("$dir"/dl/crash_*.dsc)
[ -f "${dsc[0]}" ] ||
	die "apt-get source left no crash .dsc (is crash $version still in $suite? update lab/crash-source-version); log: $LOGS/crashsrc-download.log"
run_logged "$LOGS/crashsrc-unpack.log" dpkg-source -x "${dsc[0]}" "$dir/src"
progress "crash: building for arm64 dumps on this host (log: $LOGS/crashsrc-build.log)"
# ccache, when there is one, for the embedded gdb: most of the build.
cc=gcc cxx=g++
if command -v ccache >/dev/null; then cc="ccache gcc" cxx="ccache g++"; fi
# The objects' cache keys leave the build directory out, as for the
# kernels, so that another checkout's build can use them.
run_logged "$LOGS/crashsrc-build.log" env CC="$cc" CXX="$cxx" CCACHE_NOHASHDIR=1 \
	make -C "$dir/src" target=ARM64 lzo -j"$(nproc)"
cp "$dir/src/crash" "$bin"
rm -rf "$dir/src" "$dir/dl" "$dir/apt"
ver=$("$bin" --version 2>"$LOGS/crashsrc-run.log" | sed -n 's/^crash \([0-9][^ ]*\).*/\1/p' | head -n 1) || true
[ -n "$ver" ] || die "the built crash does not run; log: $LOGS/crashsrc-run.log"
printf '%s\n' "$manifest" >"$dir/.inputs"
progress "crash: $ver (Debian $version) in ${bin#"$TOP"/}"
