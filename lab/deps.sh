#!/bin/bash
# Install the host packages the lab needs (Debian 12).  Idempotent: does
# nothing when everything is already there.
LAB_DEPS=1
. "$(dirname "$0")/lib.sh"

# The kernel lines' table is Python (lab/variants.py): python3 comes first.
if [ "$KSRC_SUITE" = unknown ]; then
	[ "$(id -u)" = 0 ] || die "python3 is missing; run 'make deps' as root"
	progress "installing python3 (log: $LOGS/apt-python3.log)"
	run_logged "$LOGS/apt-update.log" apt-get update
	run_logged "$LOGS/apt-python3.log" env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y --no-install-recommends python3
	exec "$0" "$@"
fi

HOST_PKGS=(gcc gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-system-arm
	qemu-efi-aarch64 bc bison flex libssl-dev libelf-dev
	cpio ccache make git xz-utils python3 perl dpkg-dev binutils-aarch64-linux-gnu
	kmod rsync device-tree-compiler qemu-user-static)
# crash from source (lab/crashsrc.sh, the lines with crash="source"): its
# embedded gdb needs GMP and MPFR; LZO reads makedumpfile -l dumps.
[ "$KCRASH" != source ] || HOST_PKGS+=(g++ patch texinfo libgmp-dev libmpfr-dev liblzo2-dev
	libncurses-dev zlib1g-dev)

# The kernel source is a host package only for the lines of the host's
# own suites (KERNELS in lab/variants.py); tree.sh fetches the others.
[ "$KSRC_SUITE" != host ] || HOST_PKGS+=("$KSRC_PKG")

missing=()
for p in "${HOST_PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' ||
		missing+=("$p")
done
arm64_ok=0
dpkg --print-foreign-architectures | grep -qx arm64 && arm64_ok=1

if [ ${#missing[@]} -eq 0 ] && [ $arm64_ok = 1 ]; then
	exit 0
fi

[ "$(id -u)" = 0 ] ||
	die "missing packages: ${missing[*]:-(arm64 architecture not enabled)}; run 'make deps' as root"

progress "installing host packages: ${missing[*]:-none} (log: $LOGS/apt.log)"
[ $arm64_ok = 1 ] || dpkg --add-architecture arm64
run_logged "$LOGS/apt-update.log" apt-get update
run_logged "$LOGS/apt.log" env DEBIAN_FRONTEND=noninteractive \
	apt-get install -y --no-install-recommends "${missing[@]}"
progress "host packages installed"
