#!/bin/bash
# Make $KTREE (build/linux, or build/linux-6.12 with KERNEL=6.12) a git tree
# of Debian's linux-source-$KERNEL (one base commit) with patches/$KERNEL/
# applied, and $KBASE (build/linux[-6.12]-base) a worktree at the base commit.
#
# The tree is developer-owned: commits made there are turned back into
# patches/ by 'make patches'.  This script refuses to throw such commits
# away: it re-applies patches/ only when patches/ changed since the tree
# last matched it, and the tree has no commits of its own.
. "$(dirname "$0")/lib.sh"
need_cmd git xz tar

PATCHES=("$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch)
SERIES=()
for p in "${PATCHES[@]}"; do
	[ -e "$p" ] || continue
	case $(basename "$p") in 0000-*) ;; *) SERIES+=("$p") ;; esac
done

patches_sum() {
	cat "${SERIES[@]}" /dev/null | sha256sum | cut -d' ' -f1
}

stamp=$KTREE/.git/lab-state # "<patches sha> <HEAD it produced>"
# The linux-source-$KERNEL version the series and every committed figure
# were made on.  Another one is used if the series applies to it, with a note.
made_on=$(cat "$TOP/lab/source-version-$KERNEL")
rel=${KTREE#"$TOP"/}

if [ ! -d "$KTREE/.git" ]; then
	fetch_source
	[ -f "$KSRC_TARBALL" ] ||
		die "$KSRC_TARBALL not found; run 'make deps' as root (package $KSRC_PKG)"
	if [ "$KSRC_SUITE" = host ]; then
		debver=$(dpkg-query -W -f='${Version}' "$KSRC_PKG" 2>/dev/null || echo unknown)
	else
		debver=$(cat "$KSRC_TARBALL.version" 2>/dev/null || echo unknown)
	fi
	progress "extracting $(basename "$KSRC_TARBALL") ($debver) into $rel"
	[ "$debver" = "$made_on" ] ||
		progress "note: $KSRC_PKG is $debver; the series and the figures were made on $made_on"
	rm -rf "$KTREE.tmp"
	mkdir -p "$KTREE.tmp"
	tar -C "$KTREE.tmp" --strip-components=1 -xf "$KSRC_TARBALL"
	progress "committing the base tree"
	(
		cd "$KTREE.tmp"
		git init -q -b series .
		git config user.name "kdump lab"
		git config user.email "lab@localhost"
		git config core.abbrev 12
		# Build output directories live inside the trees (see build.sh).
		printf '/_out*/\n' >>.git/info/exclude
		git add -A -f .  # Debian's top-level .gitignore ignores "/*"
		# Fixed dates: the same tarball always gives the same base commit.
		GIT_AUTHOR_DATE="2026-01-01T00:00:00Z" GIT_COMMITTER_DATE="2026-01-01T00:00:00Z" \
			git commit -q -m "Debian $KSRC_PKG $debver" \
			-m "Base for the arm64 crashkernel series: $KSRC_PKG.tar.xz from Debian package $KSRC_PKG $debver."
		git tag base
	)
	mv "$KTREE.tmp" "$KTREE"
fi

cd "$KTREE"
git rev-parse -q --verify base >/dev/null || die "$KTREE has no 'base' tag; remove $rel and rerun"

if [ ! -e "$KBASE/.git" ]; then
	progress "creating the base worktree ${KBASE#"$TOP"/}"
	git worktree prune
	git worktree add -q --detach "$KBASE" base
fi

want=$(patches_sum)
{ read -r have_sum have_head <"$stamp"; } 2>/dev/null || { have_sum=none; have_head=none; }
head=$(git rev-parse HEAD)

if [ "$want" = "$have_sum" ] && [ "$head" = "$have_head" ]; then
	exit 0
fi
if [ "$head" != "$have_head" ] && [ "$head" != "$(git rev-parse base)" ] && [ "${FORCE:-0}" != 1 ]; then
	die "$rel has commits that are not in patches/$KERNEL/ (HEAD $head);" \
		"run 'make patches KERNEL=$KERNEL' to keep them, or 'make tree KERNEL=$KERNEL FORCE=1' to discard them"
fi

progress "applying ${#SERIES[@]} patch(es) from patches/$KERNEL/"
git am --abort >/dev/null 2>&1 || true
git reset -q --hard base
for p in "${SERIES[@]}"; do
	if ! git am -q --keep-cr "$p" >"$LOGS/git-am$KSUFFIX.log" 2>&1; then
		files=$(git am --show-current-patch=diff 2>/dev/null | sed -n 's|^+++ b/||p' | sort -u | tr '\n' ' ')
		git am --abort >/dev/null 2>&1 || true
		cat "$LOGS/git-am$KSUFFIX.log" >&2
		die "patch $(basename "$p") does not apply to $(git log -1 --format=%s base)" \
			"(the series was made on $made_on; files: $files); log: $LOGS/git-am$KSUFFIX.log"
	fi
done
echo "$want $(git rev-parse HEAD)" >"$stamp"
progress "$rel: base + ${#SERIES[@]} patch(es)"
