#!/usr/bin/env python3
"""make bench-crash: the dumps as crash sees them, base against series.

For each crash layout (crashkernel=512M; 1G,high + 128M,low; 256M@0x60000000)
on an 8G guest, and the unfiltered 1G guest of crash-fulldump-1G, boots base
and series once (the scenarios of lab/scenarios.py), exports the dumps and
opens them with crash on the host (lab/vmcore.py), and records:
  - the size of the makedumpfile -l -d 31 dump (and of the ELF vmcore);
  - crash's time to open the dump and run sys, log, bt, kmem -i and one
    vtop per 2 MiB of RAM (wall clock, crash under qemu-aarch64-static);
  - whether every check_analysis check held.
Writes bench/results/KERNEL/crash.md (committed).  Figures only: make test checks.
"""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import checks as C  # noqa: E402
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import vmcore  # noqa: E402
from bench import versions  # noqa: E402

import variants  # noqa: E402

OUT = os.path.join(HERE, "results", variants.KERNEL, "crash.md")
ALL_PAIRS = [("low only, crashkernel=512M", "base-crash-plain-512M", "crash-plain-512M"),
         ("1G,high + 128M,low", "base-crash-high-low", "crash-high-low"),
         ("fixed base 256M@0x60000000", "base-crash-fixed", "crash-fixed"),
         ("UEFI, crashkernel=512M", "base-crash-plain-uefi", "crash-plain-uefi"),
         ("1G guest, 256M, unfiltered too", "base-crash-fulldump-1G", "crash-fulldump-1G")]
# The pairs whose scenarios the kernel line has (6.12 has no crash-plain-uefi).
PAIRS = [p for p in ALL_PAIRS if p[1] in SC.SCENARIOS and p[2] in SC.SCENARIOS]


def _first_line(cmd):
    try:
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as e:
        return "unknown (%s)" % e.strerror
    return (p.stdout.strip().splitlines() or ["unknown"])[0]


def crash_version():
    return _first_line(vmcore.CRASH["cmd"] + ["--version"])


def qemu_user_version():
    return _first_line([vmcore.QEMU_USER, "--version"])


def run(name):
    s = SC.SCENARIOS[name]
    lab.progress("boot %s (%s, %s, %s)" % (name, s["variant"], s["mem"], s["cmdline"]))
    r = lab.run_guest(name, s["variant"], s["mem"], s["cmdline"], s["steps"],
                      firmware=s["firmware"], timeout=600,
                      disk_bytes=lab.parse_size(s["mem"]) + (64 << 20))
    lab.progress("  %s: opening the dump with crash" % name)
    r.analysis = vmcore.analyse(r, s["variant"], s["fulldump"])
    if r.analysis is None:
        return r, None
    return r, SC.evaluate(name, {name: r})


def main():
    t0 = time.time()
    rows = []
    for label, base, series in PAIRS:
        for name in (base, series):
            r, c = run(name)
            a = (r.analysis or {}).get("kdump")
            e = (r.analysis or {}).get("elf")
            ok = c is not None and not c.failed()
            rows.append((label, SC.SCENARIOS[name]["variant"], name,
                         r.first("capture", "dump_bytes") or "-",
                         r.first("capture", "vmcore") if e else "-",
                         "%.0f" % a.seconds if a and not a.error else "-",
                         "%.0f" % e.seconds if e and not e.error else "-",
                         len(a.vtop_points) if a else 0,
                         "all %d hold" % len(c.results) if ok else
                         "FAILED: %s" % (", ".join(c.failed()) if c else r.outcome)))
    L = ["## make bench-crash results\n"]
    for k, v in versions():
        if k == "command":
            v = "make bench-crash (bench/crash.py)"
        elif k == "guests":
            v = ("QEMU virt, -cpu max, TCG, -smp 2, one guest at a time; crash times are wall "
                 "clock on this host")
        L.append("- %s: %s" % (k, v))
    L.append("- crash: %s (Debian arm64 package) under %s; vmlinux with DWARF 4 from the "
             "build of the booted Image" % (crash_version(), qemu_user_version()))
    L.append("- wall time: %d s, kernels already built" % (time.time() - t0))
    L.append("")
    L.append("| layout | kernel | scenario | -d 31 dump (bytes) | ELF vmcore (bytes) | "
             "crash, -d 31 dump (s) | crash, ELF (s) | vtop points | checks |")
    L.append("|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        L.append("| " + " | ".join(str(x) for x in row) + " |")
    L.append("")
    L.append("crash's time is mostly its start (gdb reading the vmlinux's DWARF under "
             "emulation); the vtops add the rest.  The -d 31 sizes of base and series "
             "differ by what each kernel had allocated at the crash (page tables among it: "
             "base page-maps all of RAM).")
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        f.write("\n".join(L) + "\n")
    print("\n".join(L))
    return 0 if all(row[-1].startswith("all") for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
