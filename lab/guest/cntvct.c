/*
 * cntvct: print the arm64 virtual counter and its frequency, as
 *   ticks=<cntvct_el0> freq=<cntfrq_el0>
 * so that a guest script can time steps (e.g. panic to capture kernel)
 * against a clock that keeps counting across kexec, unlike the kernels'
 * own clocks, which restart at each boot.
 *
 * Build: aarch64-linux-gnu-gcc -static -O2 -o cntvct cntvct.c
 * Linux lets EL0 read both registers (CNTKCTL_EL1.EL0VCTEN), so no
 * system call is involved.
 */
#include <inttypes.h>
#include <stdio.h>

int main(void)
{
	uint64_t ticks, freq;

	/*
	 * The counter read is not ordered against earlier instructions: the
	 * CPU may execute the mrs early, returning a value older than the
	 * program order suggests.  isb flushes the pipeline so the read
	 * happens after everything before it (the same barrier the kernel's
	 * __arch_counter_get_cntvct() uses).  The "memory" clobber keeps the
	 * compiler from moving memory accesses across it, too.
	 */
	__asm__ volatile("isb\n\tmrs %0, cntvct_el0" : "=r"(ticks) : : "memory");
	__asm__ volatile("mrs %0, cntfrq_el0" : "=r"(freq));

	printf("ticks=%" PRIu64 " freq=%" PRIu64 "\n", ticks, freq);
	return 0;
}
