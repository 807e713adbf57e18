#!/bin/bash
# crashtool.sh: make ready the crash that opens this kernel line's dumps
# (KERNELS "crash" in lab/variants.py, CRASH_TOOLS in lab/vmcore.py).
. "$(dirname "$0")/lib.sh"
case $KCRASH in
debian) exec "$TOP/lab/crashroot.sh" ;;
source) exec "$TOP/lab/crashsrc.sh" ;;
*) die "KERNEL=$KERNEL: unknown crash build '$KCRASH' in lab/variants.py" ;;
esac
