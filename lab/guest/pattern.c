// SPDX-License-Identifier: GPL-2.0
/*
 * pattern FILE MIB LO HI: fill FILE (on tmpfs) with MIB MiB of a pattern
 * that names its own physical address, so that the host can read it back
 * from the dump with crash.
 *
 * Every 64-bit word at physical address PA holds PA ^ PATTERN_MAGIC.  The
 * physical address of each page comes from /proc/self/pagemap (root sees
 * the PFNs).  The pages stay in the page cache of FILE after the program
 * exits, until the crash.
 *
 * Prints, one per line, for the host's records:
 *   magic=0x...          the XOR constant
 *   pages=N              pages written
 *   in_range=N           of those, pages with LO <= PA < HI
 *   page=0x...           up to 8 physical addresses of pages in [LO, HI),
 *                        spread over the range, then up to 2 outside it
 *   error=...            and exit status 1 on any failure
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define PATTERN_MAGIC	0x4c41425041545432ULL	/* "LABPATT2" */
#define PM_PRESENT	(1ULL << 63)
#define PM_PFN_MASK	((1ULL << 55) - 1)
#define MAX_IN		8
#define MAX_OUT		2

static int fail(const char *what)
{
	printf("error=%s: %s\n", what, strerror(errno));
	return 1;
}

/* The physical address of the page at VA, or 0 when it is not present. */
static uint64_t phys_of(int pm, const void *va, long psz)
{
	uint64_t ent;
	off_t off = (uintptr_t)va / psz * sizeof(ent);

	if (pread(pm, &ent, sizeof(ent), off) != sizeof(ent))
		return 0;
	if (!(ent & PM_PRESENT) || !(ent & PM_PFN_MASK))
		return 0;
	return (ent & PM_PFN_MASK) * psz;
}

int main(int argc, char **argv)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t lo, hi, *pa, *w;
	size_t len, npages, i, j, nin = 0, nout = 0;
	size_t *in;
	char *map;
	int fd, pm;

	if (argc != 5) {
		fprintf(stderr, "usage: pattern FILE MIB LO HI\n");
		return 2;
	}
	len = strtoull(argv[2], NULL, 0) << 20;
	lo = strtoull(argv[3], NULL, 0);
	hi = strtoull(argv[4], NULL, 0);
	npages = len / psz;

	fd = open(argv[1], O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		return fail("open");
	if (ftruncate(fd, len))
		return fail("ftruncate");
	map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return fail("mmap");
	pm = open("/proc/self/pagemap", O_RDONLY);
	if (pm < 0)
		return fail("open /proc/self/pagemap");
	pa = calloc(npages, sizeof(*pa));
	in = calloc(npages, sizeof(*in));
	if (!pa || !in)
		return fail("calloc");

	for (i = 0; i < npages; i++) {
		w = (uint64_t *)(map + i * psz);
		w[0] = 0;	/* fault the page in */
		pa[i] = phys_of(pm, w, psz);
		if (!pa[i]) {
			errno = ENOENT;
			return fail("pagemap shows no PFN (not root?)");
		}
		for (j = 0; j < psz / sizeof(*w); j++)
			w[j] = (pa[i] + j * sizeof(*w)) ^ PATTERN_MAGIC;
		if (pa[i] >= lo && pa[i] < hi)
			in[nin++] = i;
	}
	if (msync(map, len, MS_SYNC))
		return fail("msync");
	/* The pages must not have moved while they were written. */
	for (i = 0; i < npages; i++) {
		if (phys_of(pm, map + i * psz, psz) != pa[i]) {
			errno = EAGAIN;
			return fail("a page moved while it was written");
		}
	}

	printf("magic=0x%llx\n", (unsigned long long)PATTERN_MAGIC);
	printf("pages=%zu\n", npages);
	printf("in_range=%zu\n", nin);
	for (i = 0; i < MAX_IN && i < nin; i++)
		printf("page=0x%" PRIx64 "\n", pa[in[i * nin / (nin < MAX_IN ? nin : MAX_IN)]]);
	for (i = 0; i < npages && nout < MAX_OUT; i++) {
		if (pa[i] < lo || pa[i] >= hi) {
			printf("page=0x%" PRIx64 "\n", pa[i]);
			nout++;
		}
	}
	return 0;
}
