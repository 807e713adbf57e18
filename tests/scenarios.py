"""The lab's scenarios and what each must show.

A scenario boots one guest (lab.run_guest) and then makes checks on the
parsed records.  Checks are named; the names in EXPECTED_FAIL are the
shape assertions that only the series can meet, and fail on the base
kernel by design: they prove that the checks can fail.
"""

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lab"))
import lab  # noqa: E402

MIB = 1 << 20
GIB = 1 << 30
DMA_LIMIT = 4 * GIB          # QEMU virt with the stock device tree
PTE_TABLE_SPAN = 2 * MIB     # 4K pages: one PTE table maps 2 MiB

# (variant, check name): fails on that variant by design.
EXPECTED_FAIL = {
    ("base", "pte_outside_crash_equals_control"),
    ("base", "pte_tables_bounded"),
    ("base", "selftest_pte_outside_crash_within_limit"),
}


class Checker:
    """Collects named checks for one scenario."""

    def __init__(self, scenario, variant):
        self.scenario = scenario
        self.variant = variant
        self.results = []   # (name, ok, detail)

    def check(self, name, ok, detail=""):
        self.results.append((name, bool(ok), detail))
        return bool(ok)

    def eq(self, name, got, want):
        return self.check(name, got == want, "got %r, want %r" % (got, want))


def regions(res, step="boot", nth=0):
    """Crash regions [(start, end)] from the guest's /proc/iomem records."""
    vals = res.steps(step)[nth].get("iomem_crash", []) if res.steps(step) else []
    out = []
    for v in vals:
        s, e = v.split("-")
        out.append((int(s, 16), int(e, 16)))
    return sorted(out)


def klog(res):
    return res.all("boot", "klog")


def check_boot(c, res):
    if not c.check("guest_reported", res.outcome == lab.DONE or res.records,
                   "outcome %s; console log: %s" % (res.outcome, res.console)):
        return False
    return True


def check_shape(c, res, control, crash_total):
    """The linear-map shape after boot against the control boot."""
    m = res.map("boot")
    cm = control.map("boot")
    c.eq("crash_in_block_is_zero", m.get("crash_in_block"), 0)
    c.eq("crash_bytes_match_iomem", m.get("crash_bytes"), crash_total)
    c.eq("pte_outside_crash_equals_control", m.get("pte_outside_crash"),
         cm.get("pte_outside_crash"))
    limit = cm["pte_tables"] + -(-crash_total // PTE_TABLE_SPAN) + 2
    c.check("pte_tables_bounded", m.get("pte_tables", 1 << 40) <= limit,
            "pte_tables %s, limit %d (control %d + crash/2MiB + 2)"
            % (m.get("pte_tables"), limit, cm["pte_tables"]))


def check_load_unload(c, res, how, image_size, outside_valid=True):
    """Every kexec -p HOW and the kexec -p -u that follows it: the loaded
    segments go invalid, and come back on unload."""
    loads = res.runs("load" + how)
    unloads = res.runs("unload")
    if not c.check("load%s_ran" % how, loads, "no load%s records; console: %s"
                   % (how, res.console)):
        return
    for n, (idx, ld) in enumerate(loads):
        sfx = how if len(loads) == 1 else "%s_%d" % (how, n + 1)
        c.eq("load%s_rc" % sfx, ld.get("rc"), ["0"])
        c.eq("loaded_after_load%s" % sfx, ld.get("crash_loaded"), ["1"])
        inv = int(ld.get("map.invalid_crash", ["0"])[-1])
        c.check("segments_invalid_after_load%s" % sfx, inv >= image_size,
                "invalid bytes in crash regions %d, Image %d" % (inv, image_size))
        if outside_valid:
            c.eq("nothing_invalid_outside_crash_load%s" % sfx,
                 ld.get("map.invalid_outside"), ["0"])
        nxt = [i for i, _ in loads[n + 1:]] + [1 << 30]
        after = [u for i, u in unloads if idx < i < nxt[0]]
        if not after:
            continue
        ul = after[0]
        c.eq("unload_rc_after_load%s" % sfx, ul.get("rc"), ["0"])
        c.eq("not_loaded_after_unload%s" % sfx, ul.get("crash_loaded"), ["0"])
        c.eq("segments_valid_after_unload%s" % sfx, ul.get("map.invalid_crash"), ["0"])


def check_selftest(c, res):
    st = res.steps("selftest")
    if not c.check("selftest_ran", st, "no selftest records"):
        return
    for line in st[0].get("tap", []):
        # "ok 1 crash_regions_page_mapped" / "not ok 2 ..." / "... # SKIP"
        words = line.split()
        if line.startswith("ok ") or line.startswith("not ok "):
            ok = line.startswith("ok ")
            name = words[2] if ok else words[3]
            if "# SKIP" in line:
                continue
            c.check("selftest_" + name, ok, line)


def check_capture(c, res):
    marker = res.first("crash", "marker")
    c.check("crash_triggered", marker, "no crash step")
    c.check("capture_kernel_reported", res.steps("capture"),
            "no capture records; console: %s" % res.console)
    c.eq("vmcore_dmesg_rc", res.first("capture", "vmcore_dmesg_rc"), "0")
    c.eq("vmcore_dmesg_has_marker", res.first("capture", "marker_found"), marker)
    c.eq("makedumpfile_dump_dmesg_has_marker",
         res.first("capture", "dump_dmesg_marker_found"), marker)
    c.eq("makedumpfile_rc", res.first("capture", "makedumpfile_rc"), "0")
    c.check("dump_written", int(res.first("capture", "dump_bytes") or 0) > 0,
            "dump bytes %s" % res.first("capture", "dump_bytes"))
    c.eq("vmcoreinfo_osrelease", res.first("capture", "osrelease"),
         res.first("boot", "release"))


def image_size(variant):
    return os.path.getsize(lab.kernel_image(variant))


def check_shrink(c, res, delta):
    """Lowering kexec_crash_size by DELTA gives DELTA back to the page allocator."""
    sh = res.steps("shrink")
    if not c.check("shrink_ran", sh, "no shrink records"):
        return
    sh = sh[0]
    c.eq("shrink_rc", sh.get("rc"), ["0"])
    before = sum(e - s for s, e in regions(res))
    after = sum(e - s for s, e in regions(res, "shrink"))
    c.eq("iomem_crash_shrunk_by_delta", before - after, delta)
    c.eq("kexec_crash_size_after_shrink", sh.get("crash_size"), [str(before - delta)])
    grown = int(sh.get("memfree_delta_kb", ["0"])[0]) * 1024
    # MemFree moves with whatever else the guest allocates meanwhile; the
    # freed pages must show up, give or take 4 MiB.
    c.check("memfree_grew_by_delta", abs(grown - delta) <= 4 * MIB,
            "MemFree grew by %d bytes, shrunk by %d" % (grown, delta))
    c.eq("crash_in_block_after_shrink", sh.get("map.crash_in_block"), ["0"])
