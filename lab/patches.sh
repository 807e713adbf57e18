#!/bin/bash
# Regenerate patches/$KERNEL/ from the commits of $KTREE on top of 'base'.
# The cover letter's subject and body come from patches/$KERNEL/cover-letter.txt
# (first line: subject; then a blank line; then the body); git adds the
# shortlog and diffstat.  Output is stable: zero commit ids, and the cover
# letter is dated like the newest patch.
. "$(dirname "$0")/lib.sh"
need_cmd git

rel=${KTREE#"$TOP"/}
[ -d "$KTREE/.git" ] || die "$rel is missing; run 'make tree KERNEL=$KERNEL' first"
cover=$PATCHDIR/cover-letter.txt
[ -f "$cover" ] || die "$cover is missing"
cd "$KTREE"
git diff --quiet HEAD || die "$rel has uncommitted changes; commit them first"
n=$(git rev-list --count base..HEAD)
[ "$n" -gt 0 ] || die "$rel has no commits on top of base"

git config branch.series.description "$(cat "$cover")"
# The cover letter is "from" the committer: make that the series' author,
# not whoever the tree's git config names.
GIT_COMMITTER_NAME=$(git log -1 --format=%an "$(git rev-list --reverse base..HEAD | head -n 1)")
GIT_COMMITTER_EMAIL=$(git log -1 --format=%ae "$(git rev-list --reverse base..HEAD | head -n 1)")
export GIT_COMMITTER_NAME GIT_COMMITTER_EMAIL
tmp=$(mktemp -d)
git format-patch -q --zero-commit --no-signature --cover-letter \
	--cover-from-description=subject --subject-prefix="$KPREFIX" \
	-o "$tmp" base..HEAD
last_date=$(git log -1 --format=%aD HEAD)
sed -i "s/^Date: .*/Date: $last_date/" "$tmp"/0000-cover-letter.patch
rm -f "$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch
mv "$tmp"/*.patch "$PATCHDIR/"
rmdir "$tmp"
# The tree now matches patches/: record it so 'make tree' leaves it alone.
SERIES=("$PATCHDIR"/[0-9][0-9][0-9][0-9]-*.patch)
sum=$(cat $(printf '%s\n' "${SERIES[@]}" | grep -v '/0000-') | sha256sum | cut -d' ' -f1)
echo "$sum $(git rev-parse HEAD)" >"$KTREE/.git/lab-state"
progress "patches/$KERNEL/: cover letter + $n patch(es)"
