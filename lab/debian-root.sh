#!/bin/bash
# debian-root.sh: a Debian 12 (bookworm) arm64 root file system with systemd
# and Debian's kdump-tools, for the guests that boot a real distribution,
# capture with kdump-tools into /var/crash and have their dump read from the
# disk image on the host; and the raw ext4 images made from it.
#
#   lab/debian-root.sh
#       build/debian/root, cached: debootstrap --foreign on the host, the
#       second stage in the arm64 root under qemu-aarch64-static, then the
#       lab's settings (settings_root below).  The root is made again only
#       when the package list, the preseeded answers, the variant or the
#       mirror/suite change (their hash: build/debian/root.stamp); when only
#       the settings change they are applied again on the existing root
#       (build/debian/settings.stamp).
#   lab/debian-root.sh image KERNEL_IMAGE SYSTEM_MAP RELEASE OUT.img CONFIG
#       OUT.img, a raw ext4 image (an ordinary, sparse file; the guest's
#       /dev/vda) of the root with the kernel RELEASE in it:
#       /boot/vmlinuz-RELEASE, /boot/System.map-RELEASE, /boot/config-RELEASE
#       (CONFIG, the kernel's .config: mkinitramfs reads it, see below) and
#       an empty but depmod'ed /lib/modules/RELEASE (the lab's kernels have
#       no modules), with about 1 GiB free for /var/crash.  RELEASE must be
#       the kernel's `uname -r` (make -s kernelrelease): kdump-config finds
#       the kernel, and builds the capture initrd, by it.
#
# The capture kernel's initrd is NOT made here.  kdump-tools makes it in the
# guest, at the first start of kdump-tools.service: `kdump-config load` finds
# no /var/lib/kdump/initrd.img-RELEASE and runs /etc/kernel/postinst.d/
# kdump-tools RELEASE, which runs initramfs-tools' mkinitramfs with a copy of
# /etc/initramfs-tools (under /var/lib/kdump), then points
# /var/lib/kdump/{vmlinuz,initrd.img} at the kernel and that initrd.  An
# image's first boot therefore takes longer (mkinitramfs under TCG); the
# initrd stays in the image for the next boots.
#
# Run as root (debootstrap, chroot, root-owned files).  Network: Debian's
# archive (MIRROR), for building the root only.  Logs: build/logs/debian-*.log.
. "$(dirname "$0")/lib.sh"

MIRROR=http://deb.debian.org/debian
SUITE=bookworm
# minbase (Priority: required) plus what is listed: no ifupdown, no cron,
# no editors; everything the guest runs is named here.
VARIANT=minbase
KEYRING=/usr/share/keyrings/debian-archive-keyring.gpg
PACKAGES=(
	# The init: systemd as PID 1 (systemd-sysv: /sbin/init), udev for
	# /dev/vda, dbus: the system bus systemd Recommends, as any Debian
	# install has it (without it systemd-logind is skipped).
	systemd systemd-sysv udev dbus
	# The kdump under test: kdump-config and its units, kexec(8),
	# makedumpfile (kdump-tools only Recommends it; without it the dump is
	# a plain cp of /proc/vmcore).
	kdump-tools kexec-tools makedumpfile
	# kdump-tools builds the capture initrd with mkinitramfs (it only
	# Recommends initramfs-tools-core: without it there is no initrd and
	# `kdump-config load` fails).  e2fsprogs: fsck.ext4 for the root, in
	# the system and in that initrd.
	initramfs-tools e2fsprogs
	# kdump-tools' Depends, named so that debootstrap's resolver takes
	# these of the alternatives (busybox | busybox-static, bsdextrautils
	# | bsdmainutils); `apt-cache show kdump-tools` (1:1.8.1):
	#   bsdextrautils | bsdmainutils, busybox | busybox-static, debconf,
	#   file, linux-base, lsb-base, ucf, kexec-tools; Pre-Depends:
	#   init-system-helpers.  kdump-config runs file(1) on the kernel,
	#   linux-version (linux-base) to list kernels, hexdump
	#   (bsdextrautils) for Secure Boot, flock and logger (util-linux).
	busybox bsdextrautils file linux-base ucf
	# sysctl(8): kdump-config sets kernel.panic_on_oops=1 after loading.
	# kmod: lsmod in the kdump hook, depmod in mkinitramfs.
	procps kmod
)
# debconf answers, set in the root before its packages are configured.
# The questions are checked against the templates of the downloaded .debs.
PRESEED=(
	# Load the capture kernel at boot (the default, made explicit).
	"kdump-tools kdump-tools/use_kdump boolean true"
	# reboot(8) must not kexec into another kernel (the default is true):
	# the lab's guests reboot only to end, with QEMU's -no-reboot.
	"kexec-tools kexec-tools/load_kexec boolean false"
)
HOSTNAME_LAB=kdump-lab
# The capture kernel's command line is the first kernel's /proc/cmdline
# without crashkernel= (console=, root= come from there), plus this.
# kdump-tools' default is "reset_devices systemd.unit=kdump-tools-dump.service
# nr_cpus=1" (/usr/sbin/kdump-config): systemd starts only the dump unit,
# on one CPU (the crash region is sized for one).  The lab adds:
#   rw        the initrd mounts the root read-write: kdump-tools-dump.service
#             (DefaultDependencies=no, only After=local-fs.target) pulls in
#             no remount, and a root left "ro" by the first kernel's command
#             line would refuse the dump;
#   panic=-1  a capture kernel that panics reboots at once: QEMU (-no-reboot)
#             ends instead of waiting for the lab's timeout.
KDUMP_APPEND="reset_devices systemd.unit=kdump-tools-dump.service nr_cpus=1 rw panic=-1"

DIR=$BUILD/debian
ROOT=$DIR/root
DEBCACHE=$DIR/debs

usage() {
	die "usage: lab/debian-root.sh [image KERNEL_IMAGE SYSTEM_MAP RELEASE OUT.img CONFIG]"
}

# ---------------------------------------------------------------------------
# Running the root's arm64 programs.
#
# A Debian host with qemu-user-static has binfmt_misc hand them to
# qemu-aarch64-static (systemd-binfmt registers /usr/lib/binfmt.d/
# qemu-aarch64.conf at boot), and a plain chroot works.  Where nothing is
# registered (a container, a host without systemd-binfmt), running
# qemu-aarch64-static on the root's /bin/sh is not enough: qemu-user does not
# follow execve(), so the first program the shell starts fails with "Exec
# format error".  Since Linux 6.7 each user namespace can have a binfmt_misc
# of its own: the programs then run in new user (identity-mapped: uid 0 is
# root, files keep their owners), mount, pid and network namespaces, where
# Debian's registration of qemu-aarch64 (flag F: the interpreter is opened
# at registration, from the host) exists for them alone.  The host's
# binfmt_misc stays as it is.
#
# Either way the programs run in a mount namespace of their own: what they
# mount in the root (debootstrap mounts /proc and /sys) goes away with them.

BINFMT_CONF=/usr/lib/binfmt.d/qemu-aarch64.conf
CHROOT_ENV=(/usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
EXEC_MODE=

# userns_chroot ROOTDIR CMD...: CMD chrooted in ROOTDIR in new namespaces
# with a private binfmt_misc (see above).
userns_chroot() {
	local root=$1 me pid rc=0
	shift
	me=$(readlink /proc/self/ns/user)
	# The maps can only be written from here once unshare(2) has been
	# called; the inner sh waits for them, then execs bash, which (uid 0
	# now mapped) gets the namespace's full capabilities back.
	unshare --user --mount --pid --net --fork --kill-child -- /bin/sh -c '
		while ! grep -q . /proc/self/uid_map; do sleep 0.05; done
		exec /bin/bash -c "$0" bash "$@"' '
		set -e
		mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
		printf "%s" "$(grep -m1 "^:" "$1")" >/proc/sys/fs/binfmt_misc/register
		root=$2
		shift 2
		exec chroot "$root" "$@"' "$BINFMT_CONF" "$root" "$@" &
	pid=$!
	for _ in $(seq 200); do
		[ "$(readlink "/proc/$pid/ns/user" 2>/dev/null)" = "$me" ] || break
		sleep 0.05
	done
	if [ -e "/proc/$pid/uid_map" ] && [ "$(readlink "/proc/$pid/ns/user")" != "$me" ] &&
		echo "0 0 4294967295" >"/proc/$pid/uid_map" &&
		echo "0 0 4294967295" >"/proc/$pid/gid_map"; then
		wait "$pid" || rc=$?
	else
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
		rc=1
	fi
	return "$rc"
}

# pick_exec_mode ROOTDIR: how this host runs the root's programs.
pick_exec_mode() {
	local root=$1
	[ -z "$EXEC_MODE" ] || return 0
	if unshare --mount --pid --fork --kill-child chroot "$root" /bin/true 2>/dev/null; then
		EXEC_MODE=binfmt
	elif [ -r "$BINFMT_CONF" ] && userns_chroot "$root" /bin/true 2>/dev/null; then
		EXEC_MODE=userns
		progress "debian root: no qemu-aarch64 in the host's binfmt_misc; the root's programs run with a binfmt_misc of their own (user namespace)"
	else
		die "cannot run the arm64 root's programs: the host's binfmt_misc has no qemu-aarch64 entry and this kernel ($(uname -r)) gives a user namespace no binfmt_misc of its own (Linux 6.7+); register it as root ('systemctl restart systemd-binfmt', or 'update-binfmts --enable qemu-aarch64')"
	fi
}

# in_root ROOTDIR CMD...: run CMD, a program of the root, chrooted in it
# with a clean environment.
in_root() {
	local root=$1
	shift
	pick_exec_mode "$root"
	case $EXEC_MODE in
	binfmt) unshare --mount --pid --fork --kill-child chroot "$root" "${CHROOT_ENV[@]}" "$@" ;;
	# No device nodes can be made in a user namespace: debootstrap's
	# second stage then checks the root with mknod(2) unless it is told
	# it runs in a container that cannot either (as in LXC).
	userns) userns_chroot "$root" "${CHROOT_ENV[@]}" container=lxc "$@" ;;
	esac
}

# Mount points at or below $1 (never rm -rf a tree with live mounts).
mounts_below() {
	awk -v r="$1" '$2 == r || index($2, r "/") == 1 { print $2 }' /proc/mounts
}

remove_tree() {
	local t=$1 m
	[ -e "$t" ] || return 0
	m=$(mounts_below "$(realpath -m "$t")")
	[ -z "$m" ] || die "still mounted below $t: ${m//$'\n'/ }; unmount them first"
	rm -rf --one-file-system "$t"
}

# ---------------------------------------------------------------------------
# The root.

# The inputs of debootstrap; their hash decides whether the root is made
# again.
root_inputs() {
	printf 'mirror %s\nsuite %s\nvariant %s\n' "$MIRROR" "$SUITE" "$VARIANT"
	printf 'package %s\n' "${PACKAGES[@]}"
	printf 'preseed %s\n' "${PRESEED[@]}"
}

# set_var FILE NAME VALUE: NAME=VALUE in a shell variables file, replacing
# the line that sets it (or its commented-out example), else appended.
set_var() {
	local file=$1 name=$2 value=$3
	if grep -qE "^#?[[:space:]]*$name=" "$file"; then
		sed -i -E "0,/^#?[[:space:]]*$name=/s|^#?[[:space:]]*$name=.*|$name=$value|" "$file"
	else
		printf '%s=%s\n' "$name" "$value" >>"$file"
	fi
	grep -qxF "$name=$value" "$file" || die "could not set $name in $file"
}

# settings_root ROOTDIR: the lab's settings, on the host side only (file
# edits, symlinks).  Idempotent: every file is written whole or edited to a
# fixed value, so it can run again on a root that has them.
settings_root() {
	local r=$1 u
	# Identity.  No network: /etc/hosts only for the name itself.
	echo "$HOSTNAME_LAB" >"$r/etc/hostname"
	printf '127.0.0.1\tlocalhost\n127.0.1.1\t%s\n::1\tlocalhost ip6-localhost ip6-loopback\n' \
		"$HOSTNAME_LAB" >"$r/etc/hosts"
	# The whole disk is the root file system (the image has no partition
	# table); fsck at boot as on any Debian system.
	printf '# <file system> <mount point> <type> <options> <dump> <pass>\n/dev/vda / ext4 defaults 0 1\n' \
		>"$r/etc/fstab"
	# No login at all: the lab drives the guest with a systemd unit of its
	# own.  The gettys are masked (the serial one systemd would start on
	# console=ttyAMA0 included); root's password is empty, so that one can
	# unmask serial-getty@.service to look around.  Masked too: timers and
	# scrubs that would only cost time under TCG.
	for u in getty@.service serial-getty@.service console-getty.service \
		apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer \
		e2scrub_reap.service fstrim.timer; do
		ln -sfn /dev/null "$r/etc/systemd/system/$u"
	done
	sed -i -E 's/^root:[^:]*:/root::/' "$r/etc/shadow"
	# kdump-tools: load at boot, dump to /var/crash, the capture command
	# line for a one-CPU virt guest (KDUMP_APPEND above).
	[ -f "$r/etc/default/kdump-tools" ] || die "$r/etc/default/kdump-tools is missing: was kdump-tools configured?"
	set_var "$r/etc/default/kdump-tools" USE_KDUMP 1
	set_var "$r/etc/default/kdump-tools" KDUMP_COREDIR '"/var/crash"'
	set_var "$r/etc/default/kdump-tools" KDUMP_CMDLINE_APPEND "\"$KDUMP_APPEND\""
	mkdir -p "$r/var/crash"
	# The capture initrd with no module detection: the lab's kernels are
	# built-in only, and kdump-tools' hook would otherwise turn
	# MODULES=most into MODULES=dep, which walks the root device's sysfs
	# path for modules (there are none) and stops mkinitramfs, and with it
	# the capture kernel's loading, when it cannot place the device
	# (/dev/root, found by blkid and udev's /dev/disk/by-uuid).
	# MODULES=list with an empty list: no modules copied, none looked for.
	set_var "$r/etc/initramfs-tools/initramfs.conf" MODULES list
}

# A file whose hash records which settings the root has.
settings_hash() {
	{ declare -f settings_root set_var; echo "$HOSTNAME_LAB $KDUMP_APPEND"; } | sha256sum | cut -d' ' -f1
}

debootstrap_failed() {
	local stage=$1 log=$2 new=$3 why tail
	why=$(grep -m1 -E '^E: ' "$log" || true)
	tail=$(tail -n 25 "$log")
	# debootstrap keeps its own log in the root; one log for everything.
	[ ! -f "$new/debootstrap/debootstrap.log" ] ||
		{ echo "--- $new/debootstrap/debootstrap.log"; cat "$new/debootstrap/debootstrap.log"; } >>"$log"
	if grep -qE "Failed getting release|Couldn't download|Could not resolve|Temporary failure in name resolution|unable to resolve host|Connection (refused|timed out)|Network is unreachable|No route to host|failed: Name or service" "$log"; then
		die "debootstrap ($stage) cannot reach $MIRROR: ${why#E: }; log: $log"
	fi
	printf '%s\n' "$tail" >&2
	die "debootstrap ($stage) failed${why:+: ${why#E: }}; log: $log"
}

build_root() {
	local want new t_start t0 t1 log deb q pkg tmp v
	want=$(root_inputs | sha256sum | cut -d' ' -f1)
	if [ -d "$ROOT" ] && [ "$(cat "$DIR/root.stamp" 2>/dev/null)" = "$want" ]; then
		if [ "$(cat "$DIR/settings.stamp" 2>/dev/null)" != "$(settings_hash)" ]; then
			progress "debian root: applying the lab's settings again"
			rm -f "$DIR/settings.stamp"
			settings_root "$ROOT"
			settings_hash >"$DIR/settings.stamp"
		fi
		return 0
	fi
	need_cmd debootstrap qemu-aarch64-static unshare dpkg-deb
	[ -f "$KEYRING" ] || die "$KEYRING is missing; run 'make deps' as root (package debian-archive-keyring)"
	mkdir -p "$DIR" "$DEBCACHE"
	new=$DIR/root.new
	remove_tree "$new"
	t_start=$(date +%s)
	t0=$t_start

	# 1: download and unpack, on the host.  The .debs stay in build/debian/debs
	# for the next build.
	log=$LOGS/debian-debootstrap-1.log
	progress "debian root: debootstrap --foreign $SUITE arm64 from $MIRROR, ${#PACKAGES[@]} packages named (log: $log)"
	if ! debootstrap --arch=arm64 --foreign --variant="$VARIANT" --keyring="$KEYRING" \
		--cache-dir="$(realpath "$DEBCACHE")" --include="$(IFS=,; echo "${PACKAGES[*]}")" \
		"$SUITE" "$new" "$MIRROR" >"$log" 2>&1; then
		debootstrap_failed "first stage" "$log" "$new"
	fi
	t1=$(date +%s)
	progress "debian root: first stage done in $((t1 - t0))s ($(find "$new/var/cache/apt/archives" -maxdepth 1 -name '*.deb' | wc -l) packages)"

	# The preseeded questions must be those of the packages downloaded.
	tmp=$(mktemp -d)
	for q in "${PRESEED[@]}"; do
		read -r pkg q _ <<<"$q"
		deb=$(find "$new/var/cache/apt/archives" -name "${pkg}_*_*.deb" | head -n 1)
		[ -n "$deb" ] || die "debootstrap downloaded no $pkg .deb into $new/var/cache/apt/archives"
		dpkg-deb -e "$deb" "$tmp/$pkg"
		grep -qx "Template: $q" "$tmp/$pkg/templates" 2>/dev/null ||
			die "$(basename "$deb") asks no debconf question $q (see its templates); update PRESEED in lab/debian-root.sh"
	done
	rm -rf "$tmp"

	# 2: the answers, then the second stage (dpkg configures everything,
	# the maintainer scripts run) in the root, under emulation.
	log=$LOGS/debian-debootstrap-preseed.log
	pick_exec_mode "$new"
	printf '%s\n' "${PRESEED[@]}" >"$new/tmp/lab-preseed"
	run_logged "$log" in_root "$new" /usr/bin/debconf-set-selections /tmp/lab-preseed
	rm -f "$new/tmp/lab-preseed"
	log=$LOGS/debian-debootstrap-2.log
	progress "debian root: second stage under qemu-aarch64-static (log: $log)"
	in_root "$new" /debootstrap/debootstrap --second-stage >"$log" 2>&1 ||
		debootstrap_failed "second stage" "$log" "$new"
	t0=$(date +%s)
	progress "debian root: second stage done in $((t0 - t1))s"

	# What the preseed was for.
	v=$(sed -n 's/^LOAD_KEXEC=//p' "$new/etc/default/kexec" 2>/dev/null)
	[ "$v" = false ] || die "the debconf answer kexec-tools/load_kexec=false was not honoured (/etc/default/kexec has LOAD_KEXEC=${v:-nothing})"
	[ -L "$new/etc/systemd/system/basic.target.wants/kdump-tools.service" ] ||
		die "kdump-tools.service is not enabled in the root"
	[ -s "$new/etc/machine-id" ] ||
		die "the root has no /etc/machine-id (systemd's first boot would start systemd-firstboot)"
	# The archives are in build/debian/debs; the image needs no copy.
	find "$new/var/cache/apt/archives" -maxdepth 1 -name '*.deb' -delete

	settings_root "$new"
	remove_tree "$ROOT"
	mv "$new" "$ROOT"
	echo "$want" >"$DIR/root.stamp"
	settings_hash >"$DIR/settings.stamp"
	progress "debian root: $(du -sh --one-file-system "$ROOT" | cut -f1) in ${ROOT#"$TOP"/}, $(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${db:Status-Abbrev}\n' | grep -c '^ii') packages, made in $(($(date +%s) - t_start))s"
	progress "debian root: $(dpkg-query --admindir="$ROOT/var/lib/dpkg" -W -f='${Package} ${Version}, ' \
		kdump-tools makedumpfile kexec-tools systemd initramfs-tools | sed 's/, $//')"
}

# ---------------------------------------------------------------------------
# The image.

make_image() {
	local kernel=$1 sysmap=$2 release=$3 out=$4 config=$5 stage mib free bs missing
	[ -f "$kernel" ] || die "kernel image '$kernel' is not a file"
	[ -f "$sysmap" ] || die "System.map '$sysmap' is not a file"
	[ -f "$config" ] || die "kernel config '$config' is not a file"
	# The kernel must have what the root needs (config/debian.config).
	missing=$(grep -E '^CONFIG_[A-Z0-9_]+=' "$TOP/config/debian.config" | { grep -vxF -f "$config" || true; } | tr '\n' ' ')
	[ -z "$missing" ] || die "$config lacks what the Debian root needs (config/debian.config): ${missing% }"
	[[ $release =~ ^[A-Za-z0-9][A-Za-z0-9._+~-]*$ ]] ||
		die "RELEASE '$release' is not a kernel release (expected what 'make -s kernelrelease' prints)"
	[ -d "$(dirname "$out")" ] || die "no directory for $out"
	need_cmd mke2fs debugfs depmod
	build_root

	# A copy of the root with this kernel's files: hard links to the
	# cached root's files (nothing below writes into an existing file), so
	# the copy costs only directories.
	stage=$DIR/stage.$$
	remove_tree "$stage"
	trap 'rm -rf --one-file-system "$stage" "$out.tmp"' EXIT
	cp -al "$ROOT" "$stage"
	install -m 0644 "$kernel" "$stage/boot/vmlinuz-$release"
	install -m 0644 "$sysmap" "$stage/boot/System.map-$release"
	# mkinitramfs (bookworm's initramfs-tools 0.142) checks its compressor
	# against /boot/config-RELEASE (CONFIG_RD_GZIP=y here: the root has
	# no zstd program) and stops when the file is missing, so kdump-config
	# could not make the capture initrd without it.  kdump-config itself
	# reads it only for a kernel it has to find on its own (KDUMP_KERNEL
	# unset).
	install -m 0644 "$config" "$stage/boot/config-$release"
	# No modules, but mkinitramfs and depmod need the directory, and
	# modules.dep & co. make "no modules" an answer rather than an error.
	# The lists the kernel's modules_install would add (none with
	# CONFIG_MODULES=n) are there empty, so depmod finds them.
	mkdir -p "$stage/lib/modules/$release"
	touch "$stage/lib/modules/$release/"{modules.order,modules.builtin,modules.builtin.modinfo}
	run_logged "$LOGS/debian-image-depmod.log" depmod -b "$stage" "$release"
	[ -f "$stage/lib/modules/$release/modules.dep" ] || die "depmod wrote no modules.dep; log: $LOGS/debian-image-depmod.log"

	# The root, about 10% for the file system's own blocks and 1 GiB for
	# /var/crash, in MiB.
	mib=$(du -sm --one-file-system "$stage" | cut -f1)
	mib=$((mib + mib / 10 + 64 + 1024))
	rm -f "$out.tmp"
	truncate -s "${mib}M" "$out.tmp"
	run_logged "$LOGS/debian-image-mke2fs.log" mke2fs -q -F -t ext4 -L debian-root -d "$stage" "$out.tmp"
	rm -rf --one-file-system "$stage"
	debugfs -R "stat /boot/vmlinuz-$release" "$out.tmp" 2>/dev/null | grep -q '^Inode:' ||
		die "$out.tmp has no /boot/vmlinuz-$release after mke2fs; log: $LOGS/debian-image-mke2fs.log"
	mv "$out.tmp" "$out"
	trap - EXIT
	bs=$(dumpe2fs -h "$out" 2>/dev/null | sed -n 's/^Block size: *//p')
	free=$(dumpe2fs -h "$out" 2>/dev/null | sed -n 's/^Free blocks: *//p')
	progress "debian image: $out, ${mib} MiB, $((free * bs / 1048576)) MiB free, kernel $release"
}

# ---------------------------------------------------------------------------

[ "$(id -u)" = 0 ] || die "lab/debian-root.sh needs root (debootstrap, chroot, root-owned files); run it as root"
case ${1:-} in
"") [ $# -eq 0 ] || usage; build_root ;;
image) shift; [ $# -eq 5 ] || usage; make_image "$@" ;;
*) usage ;;
esac
