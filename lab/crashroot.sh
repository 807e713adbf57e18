#!/bin/bash
# crashroot.sh: build/crash/root, an arm64 sysroot holding Debian's `crash`
# (the kernel dump analysis tool) and the library packages it depends on,
# unpacked from Debian's arm64 .debs (the same cache as the initramfs).
# The host runs it under user-mode emulation:
#     qemu-aarch64-static -L build/crash/root build/crash/root/usr/bin/crash
# The kernel line's crash_suite (lab/variants.py) says which Debian's crash:
# the host's (root), or another suite's (root-SUITE, with that suite's own
# libraries, fetched through a private apt configuration).
# Rebuilt only when a package changed; ends by checking that it runs.
. "$(dirname "$0")/lib.sh"
need_cmd dpkg-deb qemu-aarch64-static

APT_SUITE=$KCRASH_SUITE fetch_arm64_debs "crashroot-$KCRASH_SUITE" crash
dir=$BUILD/crash
if [ "$KCRASH_SUITE" = host ]; then
	root=$dir/root inputs=$dir/.inputs
else
	root=$dir/root-$KCRASH_SUITE inputs=$dir/.inputs-$KCRASH_SUITE
fi
manifest=$(echo "script $(sha256sum <"$0" | cut -d' ' -f1)"; printf 'deb %s\n' "${DEBS_FILES[@]}")
if [ -x "$root/usr/bin/crash" ] && [ "$(cat "$inputs" 2>/dev/null)" = "$manifest" ]; then
	exit 0
fi
progress "crash: unpacking ${#DEBS_FILES[@]} arm64 packages into $root"
rm -rf "$root" "$inputs"
mkdir -p "$root"
for f in "${DEBS_FILES[@]}"; do
	dpkg-deb -x "$BUILD/debs/$f" "$root"
done
# Suites after Debian 12 ship their files in /usr alone and leave the
# /lib link to base-files, which a sysroot of libraries does not have.
for d in lib bin sbin; do
	[ -e "$root/$d" ] || [ ! -d "$root/usr/$d" ] || ln -s "usr/$d" "$root/$d"
done
ver=$(qemu-aarch64-static -L "$root" "$root/usr/bin/crash" --version 2>"$LOGS/crashroot.log" |
	sed -n 's/^crash \([0-9][^ ]*\).*/\1/p' | head -n 1) || true
[ -n "$ver" ] || die "the arm64 crash does not run under qemu-aarch64-static; log: $LOGS/crashroot.log"
printf '%s\n' "$manifest" >"$inputs"
progress "crash: $ver runs under qemu-aarch64-static"
