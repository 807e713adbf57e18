#!/usr/bin/env python3
"""make bench-stray KERNEL=6.12: the stray write, on 6.12 and on the series.

Boots the stray-write scenarios of lab/scenarios.py (2G guest,
crashkernel=256M, a capture kernel loaded with kexec_load or
kexec_file_load, zeros written over the crash region through /dev/mem,
then sysrq-c) on 6.12.117 and on the series, with the same boots without
the write as controls, and records what happened: the writer's exit
status, the oops it caused, whether the capture kernel reported, and the
last lines of the console.  make test checks the same runs; this writes
what they show to bench/results/6.12/stray.md (committed), which the
cover letter quotes.
"""

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import variants  # noqa: E402
from bench import versions  # noqa: E402

NAMES = ["stray-write", "stray-write-s", "base-stray-write", "base-stray-write-s",
         "base-crash-2G-256M", "base-crash-2G-256M-s"]
OUT = os.path.join(HERE, "results", variants.KERNEL, "stray.md")


def run(name):
    s = SC.SCENARIOS[name]
    lab.progress("boot %s (%s, %s, %s)" % (name, s["variant"], s["mem"], s["cmdline"]))
    r = lab.run_guest(name, s["variant"], s["mem"], s["cmdline"], s["steps"],
                      timeout=s["timeout"] or 300)
    lab.progress("  %s: %s in %.0fs" % (name, r.outcome, r.seconds))
    return name, r


def tail(path, n):
    try:
        with open(path, errors="replace") as f:
            lines = [ln.rstrip() for ln in f if ln.strip()]
    except OSError as e:
        return ["(no console: %s)" % e.strerror]
    return lines[-n:]


def main():
    missing = [n for n in NAMES if n not in SC.SCENARIOS]
    if missing:
        sys.exit("error: KERNEL=%s has no stray-write scenarios (%s); run "
                 "'make bench-stray KERNEL=6.12'" % (variants.KERNEL, ", ".join(missing)))
    t0 = time.time()
    with ThreadPoolExecutor(max_workers=2) as ex:
        res = dict(ex.map(run, NAMES))
    L = ["## make bench-stray KERNEL=%s results\n" % variants.KERNEL]
    L.append("- command: make bench-stray KERNEL=%s (bench/stray.py)" % variants.KERNEL)
    L += ["- %s: %s" % kv for kv in versions() if kv[0] not in ("guests", "command")]
    L.append("- guests: QEMU virt, -cpu max, TCG, 2 vCPUs, as in make test")
    L.append("- wall time: %d s for %d guests" % (time.time() - t0, len(NAMES)))
    L.append("")
    L.append("| scenario | kernel | load | writer exit status | new oopses | capture kernel "
             "reported | guest outcome |")
    L.append("| --- | --- | --- | ---: | ---: | --- | --- |")
    for n in NAMES:
        r, s = res[n], SC.SCENARIOS[n]
        load = [st for st in s["steps"] if st.startswith("load-")][0]
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            n, "series" if not variants.is_base(s["variant"]) else "6.12 (base)",
            {"load-c": "kexec_load", "load-s": "kexec_file_load"}[load],
            r.first("stray", "rc", "-"), r.first("stray", "oops", "-"),
            "yes" if r.steps("capture") else "NO", r.outcome))
    for n in NAMES[:4]:
        r = res[n]
        L.append("\n### %s\n" % n)
        L.append("- crash region written: %s" % r.first("stray", "target", "-"))
        L.append("- oops: %s" % r.first("stray", "oops_line", "none"))
        L.append("- last console lines (%s):\n" % os.path.relpath(r.console, lab.TOP))
        L += ["      " + ln for ln in tail(r.console, 6)]
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))
    lab.progress("wrote %s" % os.path.relpath(OUT, lab.TOP))
    return 0


if __name__ == "__main__":
    sys.exit(main())
