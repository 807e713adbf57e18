#!/usr/bin/env python3
"""make test: boot every scenario, check what the guests report, print TAP.

Phase 1 boots the guests (LAB_JOBS at a time, default 2); phase 2 checks the
records, because the shape checks compare each boot with its control boot.
Ends with the line 'N passed, N failed'.  Exit status 0 only if every check
passed (expected failures, see scenarios.EXPECTED_FAIL, count as passed;
an expected failure that passes is a failure: the check is not biting).
"""

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import scenarios as S  # noqa: E402
from scenarios import lab  # noqa: E402

G4 = 4 * S.GIB
M = S.MIB
LOAD_UNLOAD = ["load-c", "unload", "load-s", "unload", "selftest"]
PROTECT = ["protect-c", "protect-s", "selftest"]


def sc(variant="series", mem="8G", cmdline="", steps=(), checks=(),
       regions=None, log=None, control=None, firmware="dt", dma_bits=None,
       rodata="on", invalid_elsewhere=False):
    """A scenario.  regions: the crash regions expected in /proc/iomem, as
    (size, lowest start, highest end); log: a substring the kernel log must
    have; control: the scenario whose boot is this one's control;
    firmware: "dt" (QEMU's device tree) or "uefi" (QEMU_EFI.fd, ACPI);
    dma_bits: boot with a device tree whose dma-ranges limit DMA to that;
    invalid_elsewhere: debug_pagealloc unmaps free pages and KFENCE its
    guard pages, so invalid entries outside the crash regions are expected."""
    return dict(variant=variant, mem=mem, cmdline=("rodata=%s " % rodata + cmdline).strip(),
                steps=list(steps), checks=list(checks), regions=regions,
                log=log, control=control, firmware=firmware, dma_bits=dma_bits,
                invalid_elsewhere=invalid_elsewhere)


SCENARIOS = {
    # Controls: the same machines without crashkernel=.
    "control": sc(steps=["selftest"], checks=["control"]),
    "control-16G": sc(mem="16G", checks=["control"]),
    "base-control": sc("base", checks=["control"]),
    # Every crashkernel= form: reservation, shape, protection.
    "plain-512M": sc(cmdline="crashkernel=512M", steps=LOAD_UNLOAD,
                     checks=["shape"] + PROTECT, regions=[(512 * M, 0, G4)],
                     log="reserved after paging_init, below the DMA limit"),
    "plain-512M-16G": sc(mem="16G", cmdline="crashkernel=512M", steps=["load-c", "unload"],
                         checks=["shape", "protect-c"], regions=[(512 * M, 0, G4)],
                         control="control-16G"),
    "high-1G": sc(cmdline="crashkernel=1G,high", steps=LOAD_UNLOAD, checks=["shape"] + PROTECT,
                  regions=[(S.GIB, G4, 1 << 48)], log="reserved before paging_init (crashkernel=,high)"),
    "high-1G-low-128M": sc(cmdline="crashkernel=1G,high crashkernel=128M,low", steps=LOAD_UNLOAD,
                           checks=["shape"] + PROTECT,
                           regions=[(128 * M, 0, G4), (S.GIB, G4, 1 << 48)],
                           log="low 0x"),
    "fixed-256M@0x60000000": sc(cmdline="crashkernel=256M@0x60000000", steps=LOAD_UNLOAD,
                                checks=["shape"] + PROTECT,
                                regions=[(256 * M, 0x60000000, 0x70000000)],
                                log="reserved before paging_init (fixed base)"),
    "range-syntax": sc(cmdline="crashkernel=1G-4G:192M,4G-:384M", steps=["load-c", "unload"],
                       checks=["shape", "protect-c"], regions=[(384 * M, 0, G4)]),
    # Shrink through /sys/kernel/kexec_crash_size, then load again.
    "shrink-64M": sc(cmdline="crashkernel=512M", steps=["shrink:67108864", "load-c", "unload"],
                     checks=["shrink", "protect-c"], regions=[(512 * M, 0, G4)]),
    # Crash and capture, for each layout.
    "crash-plain-512M": sc(cmdline="crashkernel=512M", steps=["load-c", "crash"],
                           checks=["capture"], regions=[(512 * M, 0, G4)]),
    "crash-high-low": sc(cmdline="crashkernel=1G,high crashkernel=128M,low",
                         steps=["load-s", "crash"], checks=["capture"],
                         regions=[(128 * M, 0, G4), (S.GIB, G4, 1 << 48)]),
    "crash-fixed": sc(cmdline="crashkernel=256M@0x60000000", steps=["load-c", "crash"],
                      checks=["capture"], regions=[(256 * M, 0x60000000, 0x70000000)]),
    # Bad input: nothing reserved, a log line with the reason, blocks kept.
    "bad-garbage": sc(cmdline="crashkernel=foo", checks=["nothing"],
                      log="invalid crashkernel= value, nothing reserved"),
    "bad-zero": sc(cmdline="crashkernel=0", checks=["nothing"], log="size is zero"),
    "bad-too-large": sc(cmdline="crashkernel=64G", checks=["nothing"],
                        log="cannot allocate crashkernel"),
    "bad-low-alone": sc(cmdline="crashkernel=128M,low", checks=["nothing"],
                        log="crashkernel=,low without crashkernel=,high"),
    "bad-unaligned-base": sc(cmdline="crashkernel=256M@0x60100000", checks=["nothing"],
                             log="is not aligned to 2 MiB"),
    "bad-base-beyond-ram": sc(cmdline="crashkernel=256M@0x400000000", checks=["nothing"],
                              log="is not free RAM"),
    "bad-negative": sc(cmdline="crashkernel=-1M", checks=["nothing"],
                       log="invalid crashkernel= value, nothing reserved"),
    "bad-unit-typo": sc(cmdline="crashkernel=512Q", checks=["nothing"],
                        log="unrecognized char: Q"),
    "bad-overflow": sc(cmdline="crashkernel=99999999999999999999999M", checks=["nothing"],
                       log="cannot allocate crashkernel"),
    "bad-base-over-kernel": sc(cmdline="crashkernel=64M@0x40000000", checks=["nothing"],
                               log="is not free RAM"),
    # Senseless but meaningful combinations: documented outcome and a warning.
    "two-plain": sc(cmdline="crashkernel=256M crashkernel=512M", steps=["load-c", "unload"],
                    checks=["shape", "protect-c"], regions=[(512 * M, 0, G4)],
                    log="2 crashkernel= parameters given, using the last"),
    "plain-and-high": sc(cmdline="crashkernel=256M crashkernel=1G,high",
                         checks=["shape"], regions=[(256 * M, 0, G4)],
                         log=",high and ,low are ignored when crashkernel=size is given"),
    "shrink-then-crash": sc(cmdline="crashkernel=512M",
                            steps=["shrink:67108864", "load-c", "crash"],
                            checks=["shrink", "capture"], regions=[(512 * M, 0, G4)]),
    # Little memory: the region shares its 1G slot with the page tables,
    # memblock and the unflattened DT, all live during the rebuild.
    "control-2G": sc(mem="2G", checks=["control"]),
    "plain-512M-2G": sc(mem="2G", cmdline="crashkernel=512M",
                        steps=["load-c", "unload", "load-c", "crash"],
                        checks=["shape", "protect-c", "capture"], regions=[(512 * M, 0, G4)],
                        control="control-2G"),
    # ,high with no RAM above 4G: the documented fallback takes it below.
    "high-512M-no-ram-above-4G": sc(mem="2G", cmdline="crashkernel=512M,high",
                                    steps=["load-c", "unload"], checks=["shape", "protect-c"],
                                    regions=[(512 * M, 0, G4)], control="control-2G",
                                    log="no room above 4 GiB for crashkernel=,high"),
    # Load and unload again and again, both ways.
    "cycles-20": sc(cmdline="crashkernel=512M",
                    steps=["load-c", "unload", "load-s", "unload"] * 10,
                    checks=["protect-c", "protect-s"], regions=[(512 * M, 0, G4)]),
    # Options that page-map everything: still correct, protected, dumpable.
    "rodata-full": sc(cmdline="crashkernel=512M", rodata="full",
                      steps=["load-c", "unload", "selftest", "load-s", "crash"],
                      checks=["forced", "protect-c", "protect-s", "selftest", "capture"],
                      regions=[(512 * M, 0, G4)]),
    "debug-pagealloc": sc(cmdline="crashkernel=512M debug_pagealloc=on",
                          steps=["load-c", "unload", "selftest", "load-c", "crash"],
                          checks=["forced", "protect-c", "selftest", "capture"],
                          regions=[(512 * M, 0, G4)], invalid_elsewhere=True),
    # A DMA zone that ends below 4 GiB (31 bits: RAM starts at 1 GiB on virt).
    "control-dma31": sc(dma_bits=31, checks=["control"]),
    "plain-256M-dma31": sc(dma_bits=31, cmdline="crashkernel=256M",
                           steps=["load-c", "unload", "load-s", "crash"],
                           checks=["shape", "protect-c", "capture"],
                           regions=[(256 * M, 0, 0x80000000)], control="control-dma31",
                           log="below the DMA limit 0x80000000"),
    "high-low-dma31": sc(dma_bits=31, cmdline="crashkernel=1G,high crashkernel=128M,low",
                         steps=["load-c", "unload"], checks=["shape", "protect-c"],
                         regions=[(128 * M, 0, 0x80000000), (S.GIB, G4, 1 << 48)],
                         control="control-dma31"),
    # UEFI + ACPI, the way arm64 servers boot.
    "control-uefi": sc(firmware="uefi", checks=["control"]),
    "plain-512M-uefi": sc(firmware="uefi", cmdline="crashkernel=512M",
                          steps=["load-c", "unload", "load-s", "crash"],
                          checks=["shape", "protect-c", "capture"],
                          regions=[(512 * M, 0, G4)], control="control-uefi"),
    "high-low-uefi": sc(firmware="uefi", cmdline="crashkernel=1G,high crashkernel=128M,low",
                        steps=["load-c", "unload"], checks=["shape", "protect-c"],
                        regions=[(128 * M, 0, G4), (S.GIB, G4, 1 << 48)],
                        control="control-uefi"),
    # Scale: a 64G guest, its RAM not reserved on the host (memory-backend
    # reserve=off); the guest only touches what it uses.
    "control-64G": sc(mem="64G", checks=["control"]),
    "scale-64G": sc(mem="64G", cmdline="crashkernel=512M", steps=["load-c", "unload"],
                    checks=["shape", "protect-c"], regions=[(512 * M, 0, G4)],
                    control="control-64G"),
    # KFENCE built in (variant "kfence"): an early pool is page-mapped on its
    # own; a pool that may come late (interval 0) page-maps everything.
    "control-kfence": sc("kfence", cmdline="kfence.sample_interval=100", checks=["control"]),
    "kfence-early-pool": sc("kfence", cmdline="kfence.sample_interval=100 crashkernel=512M",
                            steps=["load-c", "unload", "selftest", "load-s", "crash"],
                            checks=["shape", "protect-c", "protect-s", "selftest", "capture"],
                            regions=[(512 * M, 0, G4)], control="control-kfence",
                            invalid_elsewhere=True),
    "kfence-late-pool": sc("kfence", cmdline="kfence.sample_interval=0 crashkernel=512M",
                           steps=["load-c", "unload", "load-s", "crash"],
                           checks=["forced", "protect-c", "protect-s", "capture"],
                           regions=[(512 * M, 0, G4)], invalid_elsewhere=True),
    # No DMA zones (variant "nodma"): everything is reserved early, as in
    # 6.1 without the series, and only the crash region is page-mapped.
    "control-nodma": sc("nodma", checks=["control"]),
    "nodma-plain-512M": sc("nodma", cmdline="crashkernel=512M",
                           steps=["load-c", "unload", "load-s", "crash"],
                           checks=["shape", "protect-c", "capture"],
                           regions=[(512 * M, 0, 1 << 48)], control="control-nodma",
                           log="reserved before paging_init (no DMA zones)"),
    "nodma-high-low": sc("nodma", cmdline="crashkernel=1G,high crashkernel=128M,low",
                         steps=["load-c", "unload"], checks=["shape", "protect-c"],
                         regions=[(S.GIB, G4, 1 << 48)], control="control-nodma"),
    # The unpatched kernel: the shape checks must fail there.
    "base-plain-512M": sc("base", cmdline="crashkernel=512M", steps=["load-c", "unload", "selftest"],
                          checks=["shape", "protect-c", "selftest"], regions=[(512 * M, 0, G4)]),
}


# Only in "make test-full": slow, or large.
FULL_ONLY = {"cycles-20", "plain-512M-16G", "control-16G", "scale-64G", "control-64G",
             "control-kfence", "kfence-early-pool", "kfence-late-pool",
             "control-nodma", "nodma-plain-512M", "nodma-high-low"}


def control_of(name):
    s = SCENARIOS[name]
    if s["control"]:
        return s["control"]
    return "base-control" if s["variant"] == "base" else "control"


def check_regions(c, regs, want):
    got = sorted(regs)
    ok = len(got) == len(want)
    for (s, e), (size, lo, hi) in zip(got, sorted(want, key=lambda w: w[1])):
        ok = ok and e - s == size and s >= lo and e <= hi
    c.check("crash_regions_as_expected", ok, "got %s, want (size, lo, hi) %s" % (
        [(hex(s), hex(e)) for s, e in got], [(hex(a), hex(b), hex(d)) for a, b, d in want]))


def evaluate(name, results):
    spec = SCENARIOS[name]
    res = results[name]
    c = S.Checker(name, spec["variant"])
    if not S.check_boot(c, res):
        return c
    c.eq("guest_finished", res.outcome, lab.DONE)
    regs = S.regions(res)
    total = sum(e - s for s, e in regs)
    if spec["regions"] is not None:
        check_regions(c, regs, spec["regions"])
    if spec["log"]:
        c.check("kernel_log_says_" + spec["log"].replace(" ", "_")[:40],
                any(spec["log"] in line for line in S.klog(res)),
                "no '%s' in the crashkernel log lines: %s" % (spec["log"], S.klog(res)))
    ctl = results.get(control_of(name))
    for k in spec["checks"]:
        if k == "control":
            c.eq("no_crash_region", regs, [])
            m = res.map("boot")
            c.check("linear_map_has_blocks", m.get("pud_bytes", 0) + m.get("pmd_bytes", 0) > 0,
                    "pud %s pmd %s" % (m.get("pud_bytes"), m.get("pmd_bytes")))
        elif k in ("shape", "nothing"):
            if not c.check("control_available", ctl and ctl.records, "control boot gave no result"):
                continue
            if k == "nothing":
                c.eq("no_crash_region", regs, [])
                m, cm = res.map("boot"), ctl.map("boot")
                for key in ("pud_bytes", "pmd_bytes", "pte_bytes", "pte_tables"):
                    c.eq("same_%s_as_control" % key, m.get(key), cm.get(key))
            else:
                S.check_shape(c, res, ctl, total)
        elif k == "forced":
            m = res.map("boot")
            c.eq("crash_in_block_is_zero", m.get("crash_in_block"), 0)
            c.check("everything_page_mapped", m.get("pud_bytes") == 0 and m.get("pmd_bytes") == 0,
                    "pud %s pmd %s" % (m.get("pud_bytes"), m.get("pmd_bytes")))
        elif k in ("protect-c", "protect-s"):
            S.check_load_unload(c, res, k[-2:], S.image_size(spec["variant"]),
                                not spec["invalid_elsewhere"])
        elif k == "selftest":
            S.check_selftest(c, res)
        elif k == "capture":
            S.check_capture(c, res)
        elif k == "shrink":
            sizes = [int(st.split(":", 1)[1]) for st in spec["steps"] if st.startswith("shrink:")]
            S.check_shrink(c, res, sizes[0])
    return c


def unit_checks():
    """The host-side unit tests, as checks: the ptdump/iomem classifier on
    recorded samples, the result-channel parser, and the kselftest built
    the kselftest way."""
    out = []
    tree = os.path.join(lab.BUILD, "linux")
    p = subprocess.run([os.path.join(HERE, "mapcheck", "run.sh"),
                        os.path.join(tree, "tools/testing/selftests/kdump/crash_linear_map.c")],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("ok ") or line.startswith("not ok "):
            out.append(("mapcheck: " + line.split(" - ", 1)[-1], line.startswith("ok "), ""))
    out.append(("mapcheck: runner exit status", p.returncode == 0, "rc %d" % p.returncode))

    import unittest
    import test_lab
    suite = unittest.defaultTestLoader.loadTestsFromModule(test_lab)
    ids = [t.id() for t in _iter_tests(suite)]
    res = unittest.TestResult()
    suite.run(res)
    bad = {t.id(): tb.strip().splitlines()[-1] for t, tb in res.failures + res.errors}
    for i in ids:
        out.append(("test_lab: " + i.split(".", 1)[-1], i not in bad, bad.get(i, "")))

    kst = os.path.join(lab.BUILD, "kselftest")
    p = subprocess.run(["make", "-s", "-C", os.path.join(tree, "tools/testing/selftests"),
                        "TARGETS=kdump", "ARCH=arm64", "CROSS_COMPILE=aarch64-linux-gnu-",
                        "O=" + kst], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out.append(("kselftest: make -C tools/testing/selftests TARGETS=kdump (arm64)",
                p.returncode == 0 and os.path.exists(os.path.join(kst, "kselftest/kdump/crash_linear_map")),
                p.stdout.strip()[-300:]))
    return out


def _iter_tests(suite):
    for t in suite:
        if hasattr(t, "__iter__"):
            yield from _iter_tests(t)
        else:
            yield t


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("LAB_JOBS", "2")))
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("LAB_TIMEOUT", "300")))
    ap.add_argument("--unit-only", action="store_true", help="only the host-side unit tests")
    ap.add_argument("--no-unit", action="store_true", help="skip the host-side unit tests")
    ap.add_argument("--full", action="store_true", help="also the slow and large scenarios")
    args = ap.parse_args()
    names = [] if args.unit_only else (args.names or [
        n for n in SCENARIOS if args.full or n not in FULL_ONLY])
    for n in names:
        if n not in SCENARIOS:
            sys.exit("error: unknown scenario %r; known: %s" % (n, " ".join(SCENARIOS)))
    # Shape checks need their control boot.
    for n in list(names):
        if {"shape", "nothing"} & set(SCENARIOS[n]["checks"]) and control_of(n) not in names:
            names.insert(0, control_of(n))

    # (name, ok, detail, directive) in TAP order
    checks = []
    if not args.no_unit:
        lab.progress("unit tests: classifier samples, result parser, kselftest build")
        checks += [(n, ok, d, "") for n, ok, d in unit_checks()]

    def boot(n):
        s = SCENARIOS[n]
        lab.progress("boot %s (%s, %s, %s)" % (n, s["variant"], s["mem"], s["cmdline"]))
        dtb = lab.dma_limited_dtb(s["mem"], s["dma_bits"]) if s["dma_bits"] else None
        r = lab.run_guest(n, s["variant"], s["mem"], s["cmdline"], s["steps"],
                          firmware=s["firmware"], dtb=dtb, timeout=args.timeout)
        lab.progress("  %s: %s in %.0fs" % (n, r.outcome, r.seconds))
        return n, r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = dict(ex.map(boot, names))

    comments = []
    for n in names:
        c = evaluate(n, results)
        if results[n].outcome != lab.DONE:
            comments.append("# %s: NO RESULT (the guest hung or died without its "
                            "final record); console: %s" % (n, results[n].console))
        for chk, ok, detail in c.results:
            xfail = (c.variant, chk) in S.EXPECTED_FAIL
            if xfail:
                # Passes when it fails as expected: the check bites.
                checks.append(("%s: %s" % (n, chk), not ok, detail,
                               "expected to fail on %s" % c.variant))
            else:
                checks.append(("%s: %s" % (n, chk), ok, detail, ""))

    print("TAP version 13")
    print("1..%d" % len(checks))
    for line in comments:
        print(line)
    passed = failed = 0
    for i, (name, ok, detail, directive) in enumerate(checks, 1):
        if directive:
            print("%s %d - %s # %s%s" % ("ok" if ok else "not ok", i, name, directive,
                                        "" if ok else " but passed"))
        elif ok:
            print("ok %d - %s" % (i, name))
        else:
            print("not ok %d - %s # %s" % (i, name, detail))
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
