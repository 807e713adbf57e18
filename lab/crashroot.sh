#!/bin/bash
# crashroot.sh: build/crash/root, an arm64 sysroot holding Debian's `crash`
# (the kernel dump analysis tool) and the library packages it depends on,
# unpacked from Debian's arm64 .debs (the same cache as the initramfs).
# The host runs it under user-mode emulation:
#     qemu-aarch64-static -L build/crash/root build/crash/root/usr/bin/crash
# Rebuilt only when a package changed; ends by checking that it runs.
. "$(dirname "$0")/lib.sh"
need_cmd dpkg-deb qemu-aarch64-static

fetch_arm64_debs crashroot crash
dir=$BUILD/crash
root=$dir/root
manifest=$(echo "script $(sha256sum <"$0" | cut -d' ' -f1)"; printf 'deb %s\n' "${DEBS_FILES[@]}")
if [ -x "$root/usr/bin/crash" ] && [ "$(cat "$dir/.inputs" 2>/dev/null)" = "$manifest" ]; then
	exit 0
fi
progress "crash: unpacking ${#DEBS_FILES[@]} arm64 packages into $root"
rm -rf "$root" "$dir/.inputs"
mkdir -p "$root"
for f in "${DEBS_FILES[@]}"; do
	dpkg-deb -x "$BUILD/debs/$f" "$root"
done
ver=$(qemu-aarch64-static -L "$root" "$root/usr/bin/crash" --version 2>"$LOGS/crashroot.log" |
	sed -n 's/^crash \([0-9][^ ]*\).*/\1/p' | head -n 1) || true
[ -n "$ver" ] || die "the arm64 crash does not run under qemu-aarch64-static; log: $LOGS/crashroot.log"
printf '%s\n' "$manifest" >"$dir/.inputs"
progress "crash: $ver runs under qemu-aarch64-static"
