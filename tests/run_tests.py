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

# name: (variant, mem, cmdline, steps, checks)
#   checks: list of check kinds understood by evaluate()
SCENARIOS = {
    "control": ("series", "8G", "rodata=on", ["selftest"], ["control"]),
    "plain-512M": ("series", "8G", "rodata=on crashkernel=512M",
                   ["load-c", "unload", "load-s", "unload", "selftest"],
                   ["shape", "low", "protect-c", "protect-s", "selftest"]),
    "high-1G-low-128M": ("series", "8G",
                         "rodata=on crashkernel=1G,high crashkernel=128M,low",
                         ["load-c", "unload", "load-s", "unload", "selftest"],
                         ["shape", "high-low", "protect-c", "protect-s", "selftest"]),
    "crash-plain-512M": ("series", "8G", "rodata=on crashkernel=512M",
                         ["load-c", "crash"], ["capture"]),
    "base-control": ("base", "8G", "rodata=on", [], ["control"]),
    "base-plain-512M": ("base", "8G", "rodata=on crashkernel=512M",
                        ["load-c", "unload", "selftest"],
                        ["shape", "low", "protect-c", "selftest"]),
}


def control_of(name):
    return "base-control" if SCENARIOS[name][0] == "base" else "control"


def evaluate(name, results):
    variant, mem, cmdline, steps, kinds = SCENARIOS[name]
    res = results[name]
    c = S.Checker(name, variant)
    if not S.check_boot(c, res):
        return c
    c.eq("guest_finished", res.outcome, lab.DONE)
    regs = S.regions(res)
    total = sum(e - s for s, e in regs)
    for k in kinds:
        if k == "control":
            c.eq("no_crash_region", regs, [])
            m = res.map("boot")
            c.check("linear_map_has_blocks", m.get("pud_bytes", 0) + m.get("pmd_bytes", 0) > 0,
                    "pud %s pmd %s" % (m.get("pud_bytes"), m.get("pmd_bytes")))
        elif k == "shape":
            ctl = results.get(control_of(name))
            if c.check("control_available", ctl and ctl.records, "control boot gave no result"):
                S.check_shape(c, res, ctl, total)
        elif k == "low":
            ok = len(regs) == 1 and regs[0][1] - regs[0][0] == 512 * S.MIB \
                and regs[0][1] <= S.DMA_LIMIT
            c.check("one_512M_region_below_dma_limit", ok, "regions %s" % [
                    (hex(s), hex(e)) for s, e in regs])
        elif k == "high-low":
            hi = [r for r in regs if r[0] >= S.DMA_LIMIT]
            lo = [r for r in regs if r[1] <= S.DMA_LIMIT]
            c.check("high_1G_above_4G", [e - s for s, e in hi] == [S.GIB],
                    "regions %s" % [(hex(s), hex(e)) for s, e in regs])
            c.check("low_128M_below_dma_limit", [e - s for s, e in lo] == [128 * S.MIB],
                    "regions %s" % [(hex(s), hex(e)) for s, e in regs])
        elif k in ("protect-c", "protect-s"):
            S.check_load_unload(c, res, k[-2:], S.image_size(variant))
        elif k == "selftest":
            S.check_selftest(c, res)
        elif k == "capture":
            S.check_capture(c, res)
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
    args = ap.parse_args()
    names = [] if args.unit_only else (args.names or list(SCENARIOS))
    for n in names:
        if n not in SCENARIOS:
            sys.exit("error: unknown scenario %r; known: %s" % (n, " ".join(SCENARIOS)))
    # Shape checks need their control boot.
    for n in list(names):
        if "shape" in SCENARIOS[n][4] and control_of(n) not in names:
            names.insert(0, control_of(n))

    # (name, ok, detail, directive) in TAP order
    checks = []
    if not args.no_unit:
        lab.progress("unit tests: classifier samples, result parser, kselftest build")
        checks += [(n, ok, d, "") for n, ok, d in unit_checks()]

    def boot(n):
        variant, mem, cmdline, steps, _ = SCENARIOS[n]
        lab.progress("boot %s (%s, %s, %s)" % (n, variant, mem, cmdline))
        r = lab.run_guest(n, variant, mem, cmdline, steps, timeout=args.timeout)
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
