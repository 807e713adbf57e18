#!/bin/bash
# initramfs.sh OUTDIR --init FILE --capture-image IMAGE [--add SRC:DEST ...]
#
# Builds the two initramfs archives of the kdump lab (gzip'd newc cpio):
#   OUTDIR/capture.cpio.gz  userspace of the capture (kdump) kernel
#   OUTDIR/first.cpio.gz    the same, plus /lab/Image (the capture kernel)
#                           and /lab/capture.cpio.gz, so that the first
#                           kernel's /init can load them with kexec -p.
# Both hold /init, a static busybox, kexec, vmcore-dmesg, makedumpfile, the
# complete shared-library closure of those three (found by reading their
# NEEDED entries, not from a hand-kept list), and the --add files.
# Everything arm64 comes from Debian's arm64 .debs, cached in build/debs.
# The archives are reproducible and only rebuilt when an input changed.
. "$(dirname "$0")/lib.sh"

usage() {
	die "usage: lab/initramfs.sh OUTDIR --init FILE --capture-image IMAGE [--add SRC:DEST ...]"
}

outdir='' init='' image=''
adds=()
while [ $# -gt 0 ]; do
	case $1 in
	--init | --capture-image | --add)
		[ $# -ge 2 ] || usage
		case $1 in
		--init) init=$2 ;;
		--capture-image) image=$2 ;;
		--add) adds+=("$2") ;;
		esac
		shift 2
		;;
	-h | --help) usage ;;
	-*) die "unknown option '$1'" ;;
	*)
		[ -z "$outdir" ] || usage
		outdir=$1
		shift
		;;
	esac
done
if [ -z "$outdir" ] || [ -z "$init" ] || [ -z "$image" ]; then
	usage
fi
[ -f "$init" ] || die "--init '$init' is not a file"
[ -f "$image" ] || die "--capture-image '$image' is not a file"

# Paths the archive reserves for itself; an --add must not overwrite them.
RESERVED=(/init /bin/busybox /bin/sh /sbin/kexec /sbin/vmcore-dmesg
	/usr/bin/makedumpfile /lab/Image /lab/capture.cpio.gz)
add_src=() add_dst=()
for spec in "${adds[@]}"; do
	# Split at the last ':' so that a source path may itself hold one.
	[[ $spec == *:* ]] || die "--add '$spec' is not SRC:DEST"
	src=${spec%:*} dst=${spec##*:}
	[ -f "$src" ] || die "--add source '$src' is not a file"
	[[ $dst == /* && $dst != */ ]] || die "--add destination '$dst' must be an absolute file path"
	for r in "${RESERVED[@]}"; do
		[ "$dst" != "$r" ] || die "--add destination '$dst' is reserved by the initramfs itself"
	done
	add_src+=("$src")
	add_dst+=("$dst")
done

# A missing cross readelf gets its own message: the package name
# (binutils-aarch64-linux-gnu) is not guessable from the command.
command -v "${CROSS}readelf" >/dev/null 2>&1 ||
	die "'${CROSS}readelf' is missing; apt-get install binutils-aarch64-linux-gnu (or run 'make deps')"
need_cmd dpkg-deb cpio gzip sha256sum
READELF=${CROSS}readelf

# 1-2. The arm64 packages (the three we need and the library packages
#    they depend on) in build/debs; see fetch_arm64_debs in lib.sh.
fetch_arm64_debs initramfs busybox-static kexec-tools makedumpfile
DEBS=$BUILD/debs

# 3. Skip everything when no input changed.  The manifest names each input
#    with its SHA256 (and each --add with its destination and mode, which
#    both end up in the archive); the .debs are named by file, which holds
#    the version.  It is kept as OUTDIR/.inputs, so a rebuild can be
#    explained with a diff.
sha() { sha256sum <"$1" | cut -d' ' -f1; }
manifest=$(
	echo "script $(sha "$0")"
	echo "init $(sha "$init")"
	echo "image $(sha "$image")"
	for i in "${!add_src[@]}"; do
		echo "add ${add_dst[$i]} $(stat -c %a "${add_src[$i]}") $(sha "${add_src[$i]}")"
	done
	printf 'deb %s\n' "${DEBS_FILES[@]}"
)
if [ -f "$outdir/capture.cpio.gz" ] && [ -f "$outdir/first.cpio.gz" ] &&
	[ "$(cat "$outdir/.inputs" 2>/dev/null)" = "$manifest" ]; then
	progress "initramfs: up to date"
	exit 0
fi
mkdir -p "$outdir"
# Forget the old state first, so that a failure below cannot leave a
# stale marker next to half-written archives.
rm -f "$outdir/.inputs"

# 4. Unpack every .deb into one staging root, afresh so that no file of
#    an older version lingers.
SROOT=$DEBS/root
rm -rf "$SROOT"
mkdir -p "$SROOT"
for f in "${DEBS_FILES[@]}"; do
	dpkg-deb -x "$DEBS/$f" "$SROOT"
done

# in_root PATH: PATH (absolute, as seen from the arm64 system) resolved to a
# real file inside the staging root.  Symlinks are followed by hand because
# an absolute link target means the staging root, not the host's /.
in_root() {
	local p=$1 n=0 t
	while [ -L "$SROOT$p" ]; do
		n=$((n + 1))
		[ $n -le 40 ] || return 1
		t=$(readlink "$SROOT$p")
		case $t in
		/*) p=$t ;;
		*) p=$(dirname "$p")/$t ;;
		esac
	done
	[ -f "$SROOT$p" ] || return 1
	printf '%s\n' "$SROOT$p"
}

# first_in_root PATH...: the first of the candidate PATHs that exists.
first_in_root() {
	local p
	for p in "$@"; do
		if [ -e "$SROOT$p" ] || [ -L "$SROOT$p" ]; then
			in_root "$p" && return 0
		fi
	done
	return 1
}

# is_elf FILE: true when FILE starts with the ELF magic.  Compared as hex,
# since a shell string cannot hold the NUL bytes other files may start with.
is_elf() {
	[ "$(head -c 4 "$1" | od -An -tx1 | tr -d ' \n')" = 7f454c46 ]
}

# ---------------------------------------------------------------------------
# 5. Stage the tree.  Each entry of `files` is "DEST SRC": DEST the path in
#    the archive, SRC the file it is a copy of (symlinks already resolved).
# ---------------------------------------------------------------------------
STAGE=$(mktemp -d "$BUILD/initramfs.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT

# busybox: only the binary and /bin/sh.  The applet symlinks are made at
# boot by /init running '/bin/busybox --install -s': the applet list comes
# from running the arm64 binary (busybox --list-full), which this amd64
# host cannot do without qemu-user, and parsing it out of the binary would
# be fragile.
bb=$(first_in_root /bin/busybox) || die "busybox-static:arm64 has no /bin/busybox"
kexec=$(first_in_root /sbin/kexec /usr/sbin/kexec) || die "kexec-tools:arm64 has no kexec"
vmd=$(first_in_root /sbin/vmcore-dmesg /usr/sbin/vmcore-dmesg) ||
	die "kexec-tools:arm64 has no vmcore-dmesg"
mkd=$(first_in_root /usr/bin/makedumpfile /usr/sbin/makedumpfile) ||
	die "makedumpfile:arm64 has no makedumpfile"

files=("/bin/busybox $bb" "/sbin/kexec $kexec" "/sbin/vmcore-dmesg $vmd"
	"/usr/bin/makedumpfile $mkd")
for i in "${!add_src[@]}"; do
	files+=("${add_dst[$i]} $(realpath "${add_src[$i]}")")
done

# Where glibc's loader looks for a library when no RUNPATH says otherwise
# (the Debian multiarch directories first); a library is put at the same
# place in the archive as it has in the packages.
LIBDIRS=(/lib/aarch64-linux-gnu /usr/lib/aarch64-linux-gnu /lib /usr/lib)

# The closure: a work list of ELF files whose NEEDED entries and program
# interpreter are looked up, each newly found library joining the list.
# The --add files take part too, so a dynamically linked test binary
# cannot end up in the archive without its libraries.
declare -A have=()   # archive path -> 1
libs=()              # "DEST SRC" of each library and interpreter found
queue=()
for e in "${files[@]}"; do
	src=${e#* }
	if is_elf "$src"; then
		"$READELF" -h "$src" | grep -q 'Machine:.*AArch64' ||
			die "${e%% *}: '$src' is an ELF file but not for AArch64"
		queue+=("$src")
	fi
done
while [ ${#queue[@]} -gt 0 ]; do
	elf=${queue[0]}
	queue=("${queue[@]:1}")
	interp=$("$READELF" -lW "$elf" | sed -n 's/.*\[Requesting program interpreter: \(.*\)\]/\1/p')
	mapfile -t needed < <("$READELF" -dW "$elf" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p')
	# The interpreter is kept at the path the binaries ask for, which
	# (unlike a NEEDED soname) is an absolute path and not searched.
	wanted=()
	[ -z "$interp" ] || wanted+=("$interp")
	for so in "${needed[@]}"; do
		for d in "${LIBDIRS[@]}"; do
			if [ -e "$SROOT$d/$so" ] || [ -L "$SROOT$d/$so" ]; then
				wanted+=("$d/$so")
				continue 2
			fi
		done
		die "library '$so' (NEEDED by ${elf#"$SROOT"}) is in none of the downloaded packages (looked in ${LIBDIRS[*]} of $SROOT)"
	done
	for p in "${wanted[@]}"; do
		[ -z "${have[$p]:-}" ] || continue
		src=$(in_root "$p") || die "'$p' (wanted by ${elf#"$SROOT"}) is a dangling link in the downloaded packages"
		have[$p]=1
		libs+=("$p $src")
		queue+=("$src")
	done
done
progress "initramfs: resolved ${#libs[@]} libraries (list: $LOGS/initramfs-libs.txt)"
files+=("${libs[@]}")

# Lay out the tree.  Every path is a copy (never a link into the staging
# root); the kernel creates /dev's nodes itself (devtmpfs), so only empty
# mount points and work directories are made here.
for d in proc sys dev tmp mnt run root etc var bin sbin usr/bin lab; do
	mkdir -p "$STAGE/$d"
done
install -m 0755 "$init" "$STAGE/init"
ln -s busybox "$STAGE/bin/sh"
for e in "${files[@]}"; do
	dst=${e%% *} src=${e#* }
	mkdir -p "$STAGE$(dirname "$dst")"
	# --preserve=mode keeps an --add file's mode; the packaged files
	# bring their own modes.
	cp --preserve=mode "$src" "$STAGE$dst"
done

# write_cpio NAME: archive the stage as OUTDIR/NAME.  Sorted names, fixed
# owners, inode numbers and mtimes, and gzip -n (no name or time stamp in
# the header) make the bytes depend on the content alone.  -6 because -9
# spends noticeably longer on the ~30 MiB Image for a few percent.
write_cpio() {
	local name=$1 tmp
	tmp=$(mktemp "$outdir/.$name.XXXXXX")
	find "$STAGE" -exec touch -h -d @0 {} +
	(cd "$STAGE" && find . -mindepth 1 -printf '%P\n' | LC_ALL=C sort |
		cpio -o -H newc --reproducible -R 0:0 --quiet) | gzip -n -6 >"$tmp"
	chmod 0644 "$tmp"
	mv "$tmp" "$outdir/$name"
	progress "initramfs: wrote $outdir/$name ($(du -b "$outdir/$name" |
		awk '{printf "%.1f", $1 / 1048576}') MiB)"
}

write_cpio capture.cpio.gz
# The first kernel's archive: the same tree plus what kexec -p loads.
cp "$image" "$STAGE/lab/Image"
cp "$outdir/capture.cpio.gz" "$STAGE/lab/capture.cpio.gz"
chmod 0644 "$STAGE/lab/Image" "$STAGE/lab/capture.cpio.gz"
write_cpio first.cpio.gz

# The library list, as archive path and the package file it came from.
for e in "${libs[@]}"; do
	dst=${e%% *} src=${e#* }
	printf '%s\t%s\n' "$dst" "${src#"$SROOT"}"
done | LC_ALL=C sort >"$LOGS/initramfs-libs.txt"
printf '%s\n' "$manifest" >"$outdir/.inputs"
