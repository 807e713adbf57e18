#!/usr/bin/env python3
"""make bench: base against series, under identical QEMU settings, one run.

Every guest runs with -icount shift=0,sleep=off, so virtual time counts
instructions and every figure is deterministic; /init reads cntvct_el0
(62.5 MHz, 16 instructions a tick) when userspace starts.

Figures, for base and series, without and with crashkernel= (runs_line):
  - linear-map shape (ptdump, classified by lab/guest/linmap.c);
  - ticks to /init at 2G..16G with crashkernel=512M, and at 8G for every
    form (1G,high with its default low region, a fixed base);
  - the same at 8G with rodata=full, where the linear map is pages;
  - ticks from sysrq-c to the end of makedumpfile (the kdump cycle) and
    what of the crash regions is invalid after kexec -p.
Writes bench/results/KERNEL/{table.md,results.json,results.csv}, which
are committed: the README and the cover letters quote them.  table.md
starts with the machine, QEMU, compiler and kernel versions and the
command.  A failed run is recorded as such and the others go on.
"""

import argparse
import csv
import json
import os
import platform
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import checks as C  # noqa: E402
import lab  # noqa: E402
import variants  # noqa: E402

OUT = os.path.join(HERE, "results", variants.KERNEL)
RAMS = ["2G", "4G", "8G", "16G"]
CRASH = "512M"
MIB = 1 << 20
PAGE = variants.page_size("series")   # one PTE table is one page
FIXED = "256M@0x60000000"


HIGH = "1G,high"


def runs_line():
    """Base without and with crashkernel= (6.12 and 7.3: blocks,
    unprotected; 6.1: all of RAM in pages, the segments protected)
    against the series (blocks elsewhere, the regions protected), for
    every form: late (plain), early (,high with its default low region,
    fixed base), with the line's block-keeping rodata= (KERNELS).  Beside
    them the alternative a maintainer names first: rodata=full, where the
    whole linear map is pages and the capture kernel can be protected
    without any change to the map.  The kdump cycles record what is
    invalid in the crash regions after kexec -p."""
    out = []
    for v in ("base", "series"):
        for mem in RAMS:
            out.append(("boot", v, mem, None, []))
            out.append(("boot", v, mem, CRASH, []))
        out.append(("boot", v, "8G", HIGH, []))
        out.append(("boot", v, "8G", FIXED, []))
        out.append(("rodatafull", v, "8G", None, []))
        out.append(("rodatafull", v, "8G", CRASH, []))
        out.append(("kdump", v, "8G", CRASH, ["load-c", "crash"]))
        out.append(("kdumpfull", v, "8G", CRASH, ["load-c", "crash"]))
    return out


def table_line(rows, wall=None):
    L = ["## make bench KERNEL=%s results\n" % variants.KERNEL]
    for k, v in versions():
        L.append("- %s: %s" % (k, v))
    if wall is not None:
        L.append("- wall time: %d s for %d guests, kernels already built" % (wall, len(rows)))
    L.append("- series size: %s" % series_size())
    L.append("")
    L.append("### Boot cost to /init (ticks of cntvct_el0, -icount shift=0)\n")
    base = ("page-maps all of RAM with crashkernel= and protects the loaded segments"
            if variants.LINE["pages_all"] else
            "keeps its blocks with crashkernel= and protects nothing")
    L.append("rodata=%s.  Unpatched %s %s; the series protects the loaded capture "
             "kernel.  Cost: against the same kernel without crashkernel=.  Both kernels "
             "boot the same initramfs (the series'), so the last column compares the "
             "kernels alone.\n" % (variants.LINE["rodata"], variants.KERNEL, base))
    L.append("| RAM | crashkernel | base, none | base | base cost | series, none | series "
             "| series cost | series against base |")
    L.append("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mem in RAMS:
        for ck in (CRASH, HIGH, FIXED):
            b0 = find(rows, kind="boot", variant="base", mem=mem, crashkernel="")
            b1 = find(rows, kind="boot", variant="base", mem=mem, crashkernel=ck)
            s0 = find(rows, kind="boot", variant="series", mem=mem, crashkernel="")
            s1 = find(rows, kind="boot", variant="series", mem=mem, crashkernel=ck)
            if not (b1 or s1):
                continue
            t = [x["ticks"] if x else None for x in (b0, b1, s0, s1)]
            f = ["%d" % x if x is not None else "failed" for x in t]
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                mem, ck, f[0], f[1], pct(t[1], t[0]), f[2], f[3], pct(t[3], t[2]),
                pct(t[3], t[1])))
    L.append("\n### Linear map (ptdump)\n")
    L.append("\"edges in a leaf\": edges of the crash regions (main and low) inside one "
             "block or contiguous run, which cannot change without a split.\n")
    if variants.LINE["rodata"] == "noalias":
        L.append("The series' boots without crashkernel= can differ from the base's by the "
                 "linear alias of the kernel image, which rodata=noalias leaves invalid: the "
                 "series adds code, so its alias can be a page longer (invalid_outside in "
                 "results.json) and break a contiguous run.  The series' cost is against its "
                 "own boot without crashkernel=.\n")
    L.append("| RAM | kernel | crashkernel | PUD blocks MiB | PMD blocks MiB (cont) | pages MiB "
             "| crash region in blocks MiB | PMD tables | PTE tables (KiB) | translation entries "
             "| edges in a leaf |")
    L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mem in RAMS:
        for v in ("base", "series"):
            for ck in ("", CRASH, HIGH, FIXED):
                x = find(rows, kind="boot", variant=v, mem=mem, crashkernel=ck)
                if not x:
                    continue
                L.append("| %s | %s | %s | %d | %d (%d) | %.1f | %.1f | %s | %d (%d) | %d | %s |" % (
                    mem, v, ck or "none", x["pud_bytes"] // MIB, x["pmd_bytes"] // MIB,
                    x["pmd_cont_bytes"] // MIB, x["pte_bytes"] / MIB,
                    x["crash_in_block"] / MIB, x.get("pmd_tables", "n/a"), x["pte_tables"],
                    x["pte_tables"] * PAGE >> 10, x["tlb_entries"],
                    x.get("crash_edges_in_leaf", "n/a")))
    L.append("\n### The alternative: rodata=full at 8G (the linear map in pages)\n")
    L.append("Against the same kernel with rodata=%s and no crashkernel= (the first "
             "table's \"none\" boot).\n" % variants.LINE["rodata"])
    L.append("| kernel | rodata | crashkernel | ticks to /init | cost | pages MiB "
             "| PTE tables (KiB) | translation entries |")
    L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for v in ("base", "series"):
        x0 = find(rows, kind="boot", variant=v, mem="8G", crashkernel="")
        for kind, ck in (("boot", ""), ("boot", CRASH), ("rodatafull", ""), ("rodatafull", CRASH)):
            x = find(rows, kind=kind, variant=v, mem="8G", crashkernel=ck)
            if x is None and kind == "rodatafull" and not any(
                    r["kind"] == kind for r in rows):
                continue    # a results file from before these rows
            L.append("| %s | %s | %s | %s | %s | %s | %s | %s |" % (
                v, "full" if kind == "rodatafull" else variants.LINE["rodata"], ck or "none",
                x["ticks"] if x else "failed",
                pct(x and x["ticks"], x0 and x0["ticks"]) if x is not x0 else "",
                "%.1f" % (x["pte_bytes"] / MIB) if x else "n/a",
                "%d (%d)" % (x["pte_tables"], x["pte_tables"] * PAGE >> 10) if x else "n/a",
                x["tlb_entries"] if x else "n/a"))
    L.append("\n### kdump cycle at 8G, crashkernel=%s (ticks from sysrq-c to the end of "
             "makedumpfile; bytes of the crash regions invalid in the linear map after "
             "kexec -p)\n" % CRASH)
    L.append("| kernel | rodata | ticks | invalid after kexec -p MiB | of the regions MiB |")
    L.append("| --- | --- | ---: | ---: | ---: |")
    for v in ("base", "series"):
        for kind in ("kdump", "kdumpfull"):
            x = find(rows, kind=kind, variant=v)
            if x is None and not any(r["kind"] == kind for r in rows):
                continue
            L.append("| %s | %s | %s | %s | %s |" % (
                v, "full" if kind == "kdumpfull" else variants.LINE["rodata"],
                x["kdump_ticks"] if x else "failed",
                "%.1f" % (x["invalid_after_load"] / MIB) if x and "invalid_after_load" in x else "n/a",
                "%.1f" % ((x["crash_bytes"] + x.get("low_bytes", 0)) / MIB) if x else "n/a"))
    bad = [r for r in rows if "error" in r]
    if bad:
        L.append("\nFailed runs: " + "; ".join("%s %s %s %s: %s" % (
            r["kind"], r["variant"], r["mem"], r["crashkernel"], r["error"]) for r in bad))
    return "\n".join(L) + "\n"


def series_size():
    """Lines the series adds and removes, in the kernel proper (arch/,
    kernel/, include/) and in all, from git diff --shortstat."""
    tree = variants.TREES["series"]
    out = []
    for label, paths in (("kernel code (arch/, kernel/, include/)",
                          ["arch", "kernel", "include"]), ("all", [])):
        p = subprocess.run(["git", "-C", tree, "diff", "--shortstat", "base", "HEAD", "--"]
                           + paths, capture_output=True, text=True)
        out.append("%s: %s" % (label, p.stdout.strip() or "unknown"))
    return "; ".join(out)


def one(job, timeout):
    kind, v, mem, ck, steps = job
    name = "bench-%s-%s-%s-%s" % (kind, v, mem, (ck or "none").replace("@", "at").replace(",", "-"))
    # rodata=on keeps blocks until 6.12; 7.3 calls that noalias (KERNELS).
    full = kind in ("rodatafull", "kdumpfull")
    cmdline = "rodata=" + ("full" if full else variants.LINE["rodata"]) + \
        (" crashkernel=" + ck if ck else "")
    if not steps:
        # A boot without steps is the same for any initramfs but for the
        # time to unpack it, which the ticks to /init include: base and
        # series first initramfs images differ by the capture Image they
        # carry (about 300k ticks on 6.12).  Both kernels boot the
        # series' image, so the columns compare kernels only.
        r = lab.run_guest(name, "series", mem, cmdline, steps, icount=True, smp=1,
                          timeout=timeout, kernel=lab.kernel_image(v))
    else:
        r = lab.run_guest(name, v, mem, cmdline, steps, icount=True, smp=1, timeout=timeout)
    row = dict(kind=kind, variant=v, mem=mem, crashkernel=ck or "", cmdline=cmdline,
               outcome=r.outcome, console=os.path.relpath(r.console, lab.TOP))
    try:
        row["ticks"] = int(r.first("boot", "ticks"))
        m = r.map("boot")
        for k in ("pud_bytes", "pmd_bytes", "pmd_cont_bytes", "pte_bytes", "pte_outside_crash",
                  "pte_tables", "tlb_entries", "crash_bytes", "crash_in_block", "pmd_tables",
                  "crash_edges_in_leaf", "invalid_outside"):
            row[k] = m[k]
        if kind in ("kdump", "kdumpfull"):
            # A cycle whose capture failed has no meaningful duration.
            c = C.Checker(name, v)
            C.check_capture(c, r)
            bad = [n for n, ok, _ in c.results if not ok]
            if bad:
                raise ValueError("capture failed: " + ", ".join(bad))
            row["kdump_ticks"] = int(r.first("capture", "t_dumped")) - int(r.first("crash", "t_crash"))
            ml = r.map("load-c")
            row["invalid_after_load"] = ml["invalid_crash"] + ml.get("invalid_low", 0)
            row["low_bytes"] = ml.get("low_bytes", 0)
    except (TypeError, KeyError, IndexError, ValueError) as e:
        row["error"] = r.error or "missing figure (%s); see %s" % (e, r.console)
    lab.progress("%-6s %-6s %4s crashkernel=%-5s %s%s" % (
        kind, v, mem, ck or "-", r.outcome,
        " ticks=%d" % row["ticks"] if "ticks" in row else " " + row.get("error", "")))
    return row


def find(rows, **kw):
    for r in rows:
        if all(r.get(k) == v for k, v in kw.items()) and "error" not in r:
            return r
    return None


def pct(a, b):
    return "%+.2f%%" % (100.0 * (a - b) / b) if a is not None and b else "n/a"


def versions():
    """What the figures were taken with, for the head of table.md."""
    def out(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True)
            return (p.stdout or p.stderr).strip().splitlines()[0]
        except (OSError, IndexError):
            return "unknown"
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    rel = {}
    for v in ("base", "series"):
        try:
            with open(os.path.join(variants.describe(v)["out"], "include/config/kernel.release")) as f:
                rel[v] = f.read().strip()
        except OSError:
            rel[v] = "unknown"
    return [
        ("command", "make bench KERNEL=%s (bench/bench.py)" % variants.KERNEL),
        ("date", time.strftime("%Y-%m-%d", time.gmtime())),
        ("host", "%s, %d CPUs, %d GiB RAM, %s" % (
            cpu, os.cpu_count(), os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") >> 30,
            platform.platform())),
        ("QEMU", out([lab.QEMU, "--version"])),
        ("compiler", out(["aarch64-linux-gnu-gcc", "--version"])),
        ("kernel source", lab.source_used()),
        ("kernels", "base %s, series %s (%d patches), %s, %d KiB pages" % (
            rel["base"], rel["series"], len([p for p in os.listdir(os.path.join(lab.TOP, "patches", variants.KERNEL))
                                             if p.endswith(".patch") and not p.startswith("0000")]),
            " + ".join(os.path.relpath(f, lab.TOP) for f in variants.lab_fragments()),
            PAGE >> 10)),
        ("guests", "QEMU virt, -cpu max, TCG, -smp 1, -icount shift=0,sleep=off; "
                   "ticks of the 62.5 MHz virtual counter (16 instructions each)"),
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("LAB_JOBS", "2")))
    ap.add_argument("--timeout", type=int, default=600)
    a = ap.parse_args()
    os.makedirs(OUT, exist_ok=True)
    jobs = runs_line()
    t0 = time.time()
    lab.progress("bench: %d guests, %d at a time, -icount shift=0,sleep=off" % (len(jobs), a.jobs))
    with ThreadPoolExecutor(max_workers=a.jobs) as ex:
        rows = list(ex.map(lambda j: one(j, a.timeout), jobs))
    with open(os.path.join(OUT, "results.json"), "w") as f:
        json.dump(rows, f, indent=1)
    keys = sorted({k for r in rows for k in r})
    with open(os.path.join(OUT, "results.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)
    md = table_line(rows, time.time() - t0)
    with open(os.path.join(OUT, "table.md"), "w") as f:
        f.write(md)
    print(md)
    lab.progress("wrote %s/table.md, results.json, results.csv" % os.path.relpath(OUT, lab.TOP))
    return 1 if any("error" in r for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
