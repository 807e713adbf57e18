#!/usr/bin/env python3
"""make run: one full kdump cycle on one kernel, explained.

Boots VARIANT (base or series) with CMDLINE and MEM, reports how the linear
map is mapped, loads a capture kernel with kexec -p, crashes with sysrq-c,
reports what the capture kernel found in /proc/vmcore, and opens the dump
on the host with crash (sys, log, bt, kmem -i, vtop through the linear map).
"""

import argparse
import os
import sys

import checks
import lab
import variants
import vmcore


def mib(n):
    return "%.1f MiB" % (n / (1 << 20))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--variant", default="series")
    ap.add_argument("--mem", default="8G")
    # The rodata= that keeps the linear map in blocks: "on" until 6.12,
    # "noalias" on 7.3, where "on" means full (variants.KERNELS).
    ap.add_argument("--cmdline", default="")
    ap.add_argument("--timeout", type=int, default=300)
    a = ap.parse_args()
    a.cmdline = a.cmdline or "rodata=%s crashkernel=512M" % variants.LINE["rodata"]
    try:
        lab.parse_size(a.mem)
    except ValueError as e:
        sys.exit("error: MEM: %s" % e)
    if a.variant not in lab.VARIANTS:
        sys.exit("error: unknown VARIANT %r (expected one of: %s)"
                 % (a.variant, " ".join(lab.VARIANTS)))

    name = "demo-%s" % a.variant
    lab.progress("booting %s kernel, %s RAM, '%s' (console: build/runs%s/%s/console.log)"
                 % (a.variant, a.mem, a.cmdline, variants.SUFFIX, name))
    r = lab.run_guest(name, a.variant, a.mem, a.cmdline, ["load-c", "crash"],
                      timeout=a.timeout, disk_bytes=lab.parse_size(a.mem) + (64 << 20))
    if r.outcome == lab.LAB_ERROR:
        print("error: %s" % r.error, file=sys.stderr)
        return 2
    lab.progress("guest finished: %s after %.0fs" % (r.outcome, r.seconds))
    if not r.steps("boot"):
        print("NO RESULT: the guest reported nothing; see %s" % r.console)
        return 2

    print()
    print("== %s kernel %s, %s RAM, cmdline: %s" % (a.variant, r.first("boot", "release"),
                                                    a.mem, a.cmdline))
    print("-- what the kernel logged about crashkernel:")
    for line in r.all("boot", "klog") or ["(nothing)"]:
        print("   " + line)
    regs = r.all("boot", "iomem_crash")
    print("-- crash regions in /proc/iomem: %s" % (", ".join(regs) or "none"))
    m = r.map("boot")
    if "pte_tables" not in m:
        print("NO RESULT: the guest reported no linear-map figures (%s); see %s"
              % ("; ".join(r.errors()) or "nothing", r.console))
        return 2
    print("-- linear map after boot:")
    print("   PUD blocks %s, PMD blocks %s (%s contiguous), pages %s"
          % (mib(m["pud_bytes"]), mib(m["pmd_bytes"]), mib(m["pmd_cont_bytes"]),
             mib(m["pte_bytes"])))
    print("   pages outside the crash regions: %s" % mib(m["pte_outside_crash"]))
    print("   PTE tables: %d (%s of page tables), translation entries: %d"
          % (m["pte_tables"], mib(m["pte_tables"] * variants.page_size(a.variant)), m["tlb_entries"]))
    print("   crash-region bytes inside block mappings: %d" % m["crash_in_block"])
    loads = r.steps("load-c")
    if loads:
        ld = loads[0]
        print("-- kexec -p -c: rc %s, kexec_crash_loaded %s, invalid (protected) bytes "
              "in the crash regions: %s"
              % (ld.get("rc", ["?"])[0], ld.get("crash_loaded", ["?"])[-1],
                 mib(int(ld.get("map.invalid_crash", ["0"])[-1]))))
    cap = r.steps("capture")
    ok = False
    if cap:
        marker = r.first("crash", "marker")
        found = r.first("capture", "marker_found") == marker
        mkd = r.first("capture", "makedumpfile_rc")
        print("-- capture kernel: /proc/vmcore %s bytes; vmcore-dmesg %s the marker; "
              "makedumpfile -l -d 31 rc %s, dump %s bytes"
              % (r.first("capture", "vmcore"), "shows" if found else "does NOT show",
                 mkd, r.first("capture", "dump_bytes")))
        ok = found and mkd == "0"
    else:
        print("-- capture kernel: no report (see %s)" % r.console)
    if ok:
        ok = analyse(r, a.variant, "lab.fulldump=1" in a.cmdline.split())
    else:
        vmcore.cleanup(os.path.dirname(r.console))
    print()
    pages = m["pte_outside_crash"]
    inv = int(loads[0].get("map.invalid_crash", ["0"])[-1]) if loads else 0
    print("VERDICT: %s; linear map outside the crash regions: %s in pages%s; loaded "
          "capture kernel %s"
          % ("capture OK" if ok else "capture FAILED", mib(pages),
             "" if m["crash_in_block"] == 0 else "; crash region inside BLOCKS",
             "protected (invalid in the linear map)" if inv else "NOT protected"))
    return 0 if ok else 1


def analyse(r, variant, fulldump):
    """Open the dump with crash on the host; print an excerpt and whether
    every check of check_analysis holds."""
    lab.progress("opening the dump with crash (qemu-aarch64-static; log: build/runs%s/%s/"
                 "crash-kdump/crash.out)" % (variants.SUFFIX, r.name))
    r.analysis = vmcore.analyse(r, variant, fulldump)
    if r.analysis is None:
        print("-- crash: no dump to open (the guest did not finish; see %s)" % r.console)
        return False
    c = checks.Checker(r.name, variant)
    checks.check_analysis(c, r, variants.page_size(variant), variants.split_slot_size(variant),
                          protects=variants.protects(variant))
    a = r.analysis["kdump"]
    print("-- crash on the dump (%s bytes; %s; %.0fs):"
          % (r.first("capture", "dump_bytes"), a.error or "opened", a.seconds))
    sysout = [ln for ln in (a.outputs.get("sys") or "").splitlines() if ln.strip()]
    print("   crash> sys")
    for line in sysout[:14]:
        print("   " + line)
    log = [ln for ln in (a.outputs.get("log") or "").splitlines() if ln.strip()]
    marker = [ln for ln in log if "lab marker" in ln]
    print("   crash> log   (the marker line, then the last lines)")
    for line in marker[-1:] + ["   ..."] + log[-4:]:
        print("   " + line)
    n = len(a.vtop_points)
    bad = c.failed()
    print("-- crash checks: %d of %d hold (vtop of %d linear-map addresses among them)%s"
          % (len(c.results) - len(bad), len(c.results), n,
             "; FAILED: " + ", ".join(bad) if bad else ""))
    for note in c.notes:
        print("   " + note)
    return not bad and bool(c.results or c.notes)


if __name__ == "__main__":
    sys.exit(main())
