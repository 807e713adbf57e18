#!/usr/bin/env python3
"""make test: boot every scenario, check what the guests report, print TAP.

The scenarios and their checks are in lab/scenarios.py and lab/checks.py.
Phase 1 boots the guests (LAB_JOBS at a time, default 2); phase 2 checks the
records, because the shape checks compare each boot with its control boot.
A guest that hangs is NO RESULT and a host-side step that fails (QEMU does
not start, the device tree cannot be made) is an ERROR; both fail the
scenario's checks and the run still ends with the line 'N passed, N failed'.
Exit status 0 only if every check passed.
"""

import argparse
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import variants  # noqa: E402
import vmcore  # noqa: E402

def unit_checks():
    """The host-side unit tests, as checks: the linear-map classifier
    (lab/guest/linmap.c on the kselftest's parser) on recorded samples, the
    result-channel parser, the QEMU command lines and every check on
    recorded and doctored records, and the kselftest built the kselftest
    way."""
    out = []
    tree = variants.TREES["series"]
    p = subprocess.run([os.path.join(HERE, "mapcheck", "run.sh"), tree],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in p.stdout.splitlines():
        if line.startswith("ok ") or line.startswith("not ok "):
            out.append(("mapcheck: " + line.split(" - ", 1)[-1], line.startswith("ok "), ""))
    out.append(("mapcheck: runner exit status", p.returncode == 0,
                "rc %d: %s" % (p.returncode, p.stdout.strip()[-300:])))

    # Each module runs under the kernel line its samples were recorded on
    # (UNIT_MODULES), in a process of its own, whatever KERNEL this run is.
    for module, kernel in UNIT_MODULES:
        out += unit_module(module, kernel)

    kst = os.path.join(lab.BUILD, "kselftest" + variants.SUFFIX)
    p = subprocess.run(["make", "-s", "-C", os.path.join(tree, "tools/testing/selftests"),
                        "TARGETS=arm64", "ARM64_SUBTARGETS=kdump", "ARCH=arm64",
                        "CROSS_COMPILE=aarch64-linux-gnu-", "O=" + kst],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out.append(("kselftest: make -C tools/testing/selftests TARGETS=arm64 "
                "ARM64_SUBTARGETS=kdump (cross)",
                p.returncode == 0 and os.path.exists(
                    os.path.join(kst, "kselftest/arm64/kdump/crash_linear_map")),
                p.stdout.strip()[-300:]))
    return out


# The host-side unit test modules, and the KERNEL each runs with
# (test_check_failures and test_check_coverage pass with any).
UNIT_MODULES = [("test_lab", "6.1"), ("test_mainline", "7.3"), ("test_check_failures", "6.1"),
                ("test_check_coverage", "6.1")]

_UNIT_RUNNER = r"""
import json, sys, unittest
sys.path.insert(0, sys.argv[1])
mod = __import__(sys.argv[2])
suite = unittest.defaultTestLoader.loadTestsFromModule(mod)

def tests(s):
    for t in s:
        if hasattr(t, "__iter__"):
            yield from tests(t)
        else:
            yield t

ids = [t.id() for t in tests(suite)]
res = unittest.TestResult()
suite.run(res)
bad = {t.id(): tb.strip().splitlines()[-1] for t, tb in res.failures + res.errors}
# A skip or an expected failure is not a pass.
bad.update({t.id(): "skipped: %s" % why for t, why in res.skipped})
bad.update({t.id(): "expected failure" for t, _ in res.expectedFailures})
bad.update({t.id(): "unexpected success" for t in res.unexpectedSuccesses})
print(json.dumps([(i, i not in bad, bad.get(i, "")) for i in ids]))
"""


def unit_module(module, kernel):
    """[(name, ok, detail)] of every test of tests/MODULE.py, run with
    KERNEL=KERNEL."""
    import json
    p = subprocess.run([sys.executable, "-c", _UNIT_RUNNER, HERE, module],
                       capture_output=True, text=True, env=dict(os.environ, KERNEL=kernel))
    try:
        rows = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        return [("%s: runs (KERNEL=%s)" % (module, kernel), False,
                 "exit %d: %s" % (p.returncode, (p.stderr or p.stdout).strip()[-300:]))]
    return [("%s: %s" % (module, i.split(".", 1)[-1]), ok, detail) for i, ok, detail in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="scenarios to run (default: all)")
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("LAB_JOBS", "2")))
    ap.add_argument("--timeout", type=int, default=int(os.environ.get("LAB_TIMEOUT", "300")))
    ap.add_argument("--unit-only", action="store_true", help="only the host-side unit tests")
    ap.add_argument("--no-unit", action="store_true", help="skip the host-side unit tests")
    ap.add_argument("--full", action="store_true", help="also the slow and large scenarios")
    ap.add_argument("--print-variants", action="store_true",
                    help="print the extra kernel variants the scenarios need, and exit")
    args = ap.parse_args()
    if args.print_variants:
        print(" ".join(SC.variants_used(args.full)))
        return 0
    names = [] if args.unit_only else (args.names or [
        n for n in SC.SCENARIOS if args.full or n not in SC.FULL_ONLY])
    for n in names:
        if n not in SC.SCENARIOS:
            sys.exit("error: unknown scenario %r; known: %s" % (n, " ".join(SC.SCENARIOS)))
    # Shape checks need their control boot.
    for n in list(names):
        if SC.needs_control(n) and SC.control_of(n) not in names:
            names.insert(0, SC.control_of(n))

    lab.progress("kernel source: %s" % lab.source_used())
    # (name, ok, detail) in TAP order
    checks = []
    if not args.no_unit:
        lab.progress("unit tests: classifier samples, result parser, checks, kselftest build")
        checks += unit_checks()

    def boot(n):
        s = SC.SCENARIOS[n]
        lab.progress("boot %s (%s, %s, %s)" % (n, s["variant"], s["mem"], s["cmdline"]))
        try:
            dtb = lab.dma_limited_dtb(s["mem"], s["dma_bits"]) if s["dma_bits"] else None
        except lab.LabError as e:
            r = lab.Result(n, lab.LAB_ERROR, [], "(not booted)", 0.0, error=str(e))
        else:
            # A crash scenario's guest gets a disk for its dumps (sparse).
            disk = lab.parse_size(s["mem"]) + (64 << 20) if SC.has_crash(n) else 0
            r = lab.run_guest(n, s["variant"], s["mem"], s["cmdline"], s["steps"],
                              firmware=s["firmware"], dtb=dtb,
                              timeout=min(args.timeout, s["timeout"] or args.timeout),
                              cpu=s["cpu"],
                              disk_bytes=disk)
            if disk:
                lab.progress("  %s: opening the dump with crash" % n)
                r.analysis = vmcore.analyse(r, s["variant"], s["fulldump"])
                for name, a in sorted((r.analysis or {}).items()):
                    lab.progress("  %s: crash on the %s dump: %s" % (
                        n, name, a.error or "%.0fs" % a.seconds))
        if r.outcome == lab.LAB_ERROR:
            lab.progress("  %s: ERROR: %s" % (n, r.error))
        else:
            lab.progress("  %s: %s in %.0fs" % (n, r.outcome, r.seconds))
        return n, r

    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as ex:
        results = dict(ex.map(boot, names))

    comments = []
    for n in names:
        r = results[n]
        if r.outcome == lab.NO_RESULT and SC.SCENARIOS[n]["lost"]:
            comments.append("# %s: NO RESULT, as this scenario requires (its capture "
                            "kernel was overwritten); console: %s" % (n, r.console))
        elif r.outcome == lab.NO_RESULT:
            comments.append("# %s: NO RESULT (the guest hung or died without its "
                            "final record); console: %s" % (n, r.console))
        elif r.outcome == lab.LAB_ERROR:
            comments.append("# %s: ERROR: %s" % (n, r.error))
        ev = SC.evaluate(n, results)
        comments += ["# %s: %s" % (n, note) for note in ev.notes]
        # A dump is kept only where a check failed (it is tens of MiB).
        dump = os.path.join(os.path.dirname(r.console), "dump.kdump")
        if not ev.failed() and os.path.exists(dump):
            os.unlink(dump)
        for chk, ok, detail in ev.results:
            checks.append(("%s: %s" % (n, chk), ok, detail))

    print("TAP version 13")
    print("1..%d" % len(checks))
    for line in comments:
        print(line)
    passed = failed = 0
    for i, (name, ok, detail) in enumerate(checks, 1):
        if ok:
            print("ok %d - %s" % (i, name))
        else:
            print("not ok %d - %s # %s" % (i, name, detail))
        passed += ok
        failed += not ok
    print("%d passed, %d failed" % (passed, failed))
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
