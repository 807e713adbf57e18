// SPDX-License-Identifier: GPL-2.0
/*
 * linmap: the lab's figures of the arm64 linear map, one key=value per
 * line, computed by the kselftest's parser (linear_map.c of
 * tools/testing/selftests/arm64/kdump, compiled in with -I to that dir).
 *
 *   linmap [--ptdump FILE] [--iomem FILE] [--page-size N]
 *
 * Defaults: /sys/kernel/debug/kernel_page_tables, /proc/iomem and
 * sysconf(_SC_PAGESIZE).  On any failure it prints a single line
 * "error=<reason>" on stdout and exits with status 2.
 *
 * Keys, in bytes unless said otherwise:
 *   pud_bytes, pmd_bytes  level-1 and level-2 block entries (valid or not)
 *   pmd_cont_bytes        level-2 blocks with the contiguous bit
 *   pte_bytes             page entries (valid or not)
 *   pte_cont_bytes        page entries with the contiguous bit
 *   pte_outside_crash     page entries outside the crash regions
 *   pte_tables            PTE tables (spans of page_size * page_size / 8)
 *                         holding page-level lines, holes included
 *   pte_spans_avoidable   spans, a count, holding page entries although
 *                         they could be one block: inside one top-level
 *                         System RAM range, clear of the crash regions
 *                         and of the nested "Kernel ..." entries
 *   tlb_entries           translations the valid entries need in a TLB:
 *                         one per entry, one per contiguous group
 *   linear_bytes          valid entries
 *   crash_bytes, crash_in_block, crash_unmapped, crash_cont,
 *   invalid_crash, invalid_outside,
 *   crash_memtype_other   as in linear_map.h: all about the main crash
 *                         region (the highest "Crash kernel"); a low
 *                         region counts as ordinary memory
 *   memtype_below, memtype_above
 *                         memory type next to the main region, or "-"
 *   page_size             the page size used, in bytes
 *   va_bits, levels       VA_BITS (from where the linear map starts) and
 *                         the number of page-table levels
 *   crash_edges_in_leaf   edges of the crash regions (main and low, start
 *                         and end, a count) that fall inside one leaf
 *                         entry or contiguous run: that entry maps memory
 *                         on both sides, so the region cannot change
 *                         without a split
 *   pmd_tables            PMD tables (spans of one level-1 entry) holding
 *                         PMD- or page-level lines, holes excluded
 *   low_bytes, invalid_low
 *                         size of the low crash regions, and how much of
 *                         them is invalid
 *   crash_regions         how many main regions (0 or 1); then
 *                         phys_offset=0x..., one crash_region=0xSTART-0xEND
 *                         (END exclusive) each, and one
 *                         crash_low_region=0xSTART-0xEND per low region
 *
 * ptdump names the level of a line, not the size of its entries.  A PTE
 * entry is a page.  A PMD leaf is a level-2 block, one PTE table's span.
 * Any other leaf (PUD, or PGD when the PUD level is folded into it) is a
 * level-1 block with 4K pages, the only granule whose level 1 holds
 * blocks (pud_sect_supported()); with 16K and 64K pages it can only be the
 * level-2 block of a folded table (two levels, printed as PGD).
 * Contiguous groups are CONT_PTES and CONT_PMDS entries: 16 and 16 with
 * 4K pages, 128 and 32 with 16K, 32 and 32 with 64K.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "linear_map.h"

struct extra {
	long page_size;
	unsigned long long pud_bytes;
	unsigned long long pmd_bytes;
	unsigned long long pmd_cont_bytes;
	unsigned long long pte_bytes;
	unsigned long long pte_cont_bytes;
	unsigned long long tlb_entries;
	unsigned long long linear_bytes;
	/* Leaf lines, kept for the edges of the crash regions */
	struct leaf {
		unsigned long long start, end, granule;
		int invalid;
	} *leaves;
	unsigned int nr_leaves, max_leaves;
	/* The level-1 span of the last PMD table counted, plus one */
	unsigned long long last_pmd_table;
	unsigned long long pmd_tables;
	int oom;
};

static void keep_leaf(struct extra *x, const struct lm_line *l,
		      unsigned long long granule)
{
	struct leaf *n;

	if (x->nr_leaves == x->max_leaves) {
		x->max_leaves = x->max_leaves ? 2 * x->max_leaves : 256;
		n = realloc(x->leaves, x->max_leaves * sizeof(*n));
		if (!n) {
			x->oom = 1;
			return;
		}
		x->leaves = n;
	}
	x->leaves[x->nr_leaves].start = l->start;
	x->leaves[x->nr_leaves].end = l->end;
	x->leaves[x->nr_leaves].invalid = l->invalid;
	x->leaves[x->nr_leaves++].granule = granule;
}

/* Invalid bytes of the leaf lines in the linear range [start, end) */
static unsigned long long invalid_in(const struct extra *x,
				     unsigned long long start,
				     unsigned long long end)
{
	unsigned long long lo, hi, bytes = 0;
	unsigned int i;

	for (i = 0; i < x->nr_leaves; i++) {
		if (!x->leaves[i].invalid)
			continue;
		lo = x->leaves[i].start > start ? x->leaves[i].start : start;
		hi = x->leaves[i].end < end ? x->leaves[i].end : end;
		if (hi > lo)
			bytes += hi - lo;
	}
	return bytes;
}

/*
 * The lowest linear address of an invalid leaf line in [start, end), or
 * end when there is none: where a write running upwards from start
 * faults first.
 */
static unsigned long long first_invalid(const struct extra *x,
					unsigned long long start,
					unsigned long long end)
{
	unsigned long long lo, first = end;
	unsigned int i;

	for (i = 0; i < x->nr_leaves; i++) {
		if (!x->leaves[i].invalid || x->leaves[i].end <= start ||
		    x->leaves[i].start >= end)
			continue;
		lo = x->leaves[i].start > start ? x->leaves[i].start : start;
		if (lo < first)
			first = lo;
	}
	return first;
}

/* 1 if the linear address VA lies strictly inside one leaf or run */
static int edge_in_leaf(const struct extra *x, unsigned long long va)
{
	unsigned int i;

	for (i = 0; i < x->nr_leaves; i++)
		if (x->leaves[i].start < va && va < x->leaves[i].end)
			return va % x->leaves[i].granule != 0;
	return 0;
}

static void line_figures(const struct lm_line *l, void *arg)
{
	struct extra *x = arg;
	unsigned long long size = l->end - l->start;
	unsigned long long ptrs = x->page_size / 8;
	unsigned long long entry = x->page_size, cont;
	int level = 3;

	if (l->hole)
		return;
	if (!l->pte)
		level = strcmp(l->level, "PMD") && x->page_size == 4096 ? 1 : 2;
	if (level > 1) {
		unsigned long long span = x->page_size * ptrs * ptrs;
		unsigned long long first = l->start / span, last = (l->end - 1) / span;

		if (first + 1 > x->last_pmd_table)
			x->pmd_tables += last - first + 1;
		else
			x->pmd_tables += last + 1 - x->last_pmd_table;
		x->last_pmd_table = last + 1;
	}
	if (level == 3) {
		cont = x->page_size == 16384 ? 128 : x->page_size == 65536 ? 32 : 16;
		x->pte_bytes += size;
		if (l->cont)
			x->pte_cont_bytes += size;
	} else if (level == 2) {
		cont = x->page_size == 4096 ? 16 : 32;
		entry *= ptrs;
		x->pmd_bytes += size;
		if (l->cont)
			x->pmd_cont_bytes += size;
	} else {
		cont = 1;
		entry *= ptrs * ptrs;
		x->pud_bytes += size;
	}
	if (l->cont)
		entry *= cont;
	keep_leaf(x, l, entry);
	if (l->invalid)
		return;
	x->linear_bytes += size;
	x->tlb_entries += (size + entry - 1) / entry;
}

static int error(const char *msg)
{
	printf("error=%s\n", msg);
	return 2;
}

int main(int argc, char **argv)
{
	const char *ptdump = "/sys/kernel/debug/kernel_page_tables";
	const char *iomem = "/proc/iomem";
	struct extra x = { .page_size = sysconf(_SC_PAGESIZE) };
	char err[LM_ERR_LEN], *end;
	struct lm_figures f;
	struct lm_iomem io;
	unsigned long long edges = 0, low_bytes = 0, invalid_low = 0;
	unsigned int i;

	for (i = 1; i < (unsigned int)argc; i++) {
		if (i + 1 == (unsigned int)argc)
			return error("usage: linmap [--ptdump FILE] [--iomem FILE] [--page-size N]");
		if (!strcmp(argv[i], "--ptdump")) {
			ptdump = argv[++i];
		} else if (!strcmp(argv[i], "--iomem")) {
			iomem = argv[++i];
		} else if (!strcmp(argv[i], "--page-size")) {
			x.page_size = strtol(argv[++i], &end, 0);
			if (*end || end == argv[i])
				return error("--page-size needs a number");
		} else {
			return error("usage: linmap [--ptdump FILE] [--iomem FILE] [--page-size N]");
		}
	}

	if (lm_figures(ptdump, iomem, x.page_size, &io, &f, line_figures, &x,
		       err))
		return error(err);
	if (x.oom)
		return error("out of memory for the leaf lines");
	for (i = 0; i < io.nr_crash; i++)
		edges += edge_in_leaf(&x, io.crash[i].start + f.phys_offset) +
			 edge_in_leaf(&x, io.crash[i].end + f.phys_offset);
	for (i = 0; i < io.nr_low; i++) {
		edges += edge_in_leaf(&x, io.low[i].start + f.phys_offset) +
			 edge_in_leaf(&x, io.low[i].end + f.phys_offset);
		low_bytes += io.low[i].end - io.low[i].start;
		invalid_low += invalid_in(&x, io.low[i].start + f.phys_offset,
					  io.low[i].end + f.phys_offset);
	}

	printf("pud_bytes=%llu\n", x.pud_bytes);
	printf("pmd_bytes=%llu\n", x.pmd_bytes);
	printf("pmd_cont_bytes=%llu\n", x.pmd_cont_bytes);
	printf("pte_bytes=%llu\n", x.pte_bytes);
	printf("pte_cont_bytes=%llu\n", x.pte_cont_bytes);
	printf("pte_outside_crash=%llu\n", f.pte_outside_crash);
	printf("pte_tables=%llu\n", f.pte_tables);
	printf("pte_spans_avoidable=%llu\n", f.pte_spans_avoidable);
	printf("tlb_entries=%llu\n", x.tlb_entries);
	printf("linear_bytes=%llu\n", x.linear_bytes);
	printf("crash_edges_in_leaf=%llu\n", edges);
	printf("pmd_tables=%llu\n", x.pmd_tables);
	printf("low_bytes=%llu\n", low_bytes);
	printf("invalid_low=%llu\n", invalid_low);
	printf("crash_bytes=%llu\n", f.crash_bytes);
	printf("crash_in_block=%llu\n", f.crash_in_block);
	printf("crash_unmapped=%llu\n", f.crash_unmapped);
	printf("crash_cont=%llu\n", f.crash_cont);
	printf("invalid_crash=%llu\n", f.invalid_crash);
	if (io.nr_crash) {
		/* the main (highest) region, as lm_figures() counts it */
		struct lm_range *r = &io.crash[io.nr_crash - 1];
		unsigned long long lo = r->start + f.phys_offset;
		unsigned long long hi = r->end + f.phys_offset;
		unsigned long long fi = first_invalid(&x, lo, hi);

		if (fi < hi)
			printf("first_invalid_crash=0x%llx\n", fi - f.phys_offset);
		else
			printf("first_invalid_crash=-\n");
	}
	printf("invalid_outside=%llu\n", f.invalid_outside);
	printf("crash_memtype_other=%llu\n", f.crash_memtype_other);
	printf("memtype_below=%s\n", f.memtype_below[0] ? f.memtype_below : "-");
	printf("memtype_above=%s\n", f.memtype_above[0] ? f.memtype_above : "-");
	printf("page_size=%ld\n", x.page_size);
	printf("va_bits=%u\n", f.va_bits);
	printf("levels=%u\n", f.levels);
	printf("crash_regions=%u\n", io.nr_crash);
	printf("phys_offset=0x%llx\n", f.phys_offset);
	for (i = 0; i < io.nr_crash; i++)
		printf("crash_region=0x%llx-0x%llx\n", io.crash[i].start,
		       io.crash[i].end);
	for (i = 0; i < io.nr_low; i++)
		printf("crash_low_region=0x%llx-0x%llx\n", io.low[i].start,
		       io.low[i].end);
	return 0;
}
