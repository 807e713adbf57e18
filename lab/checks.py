"""What a guest's records must show.

Each check_* function takes a Checker and a lab.Result (and what it is
compared with) and adds named checks.  They never raise on missing or
malformed records: a missing figure is a failed check, with the reason.
lab/scenarios.py decides which checks a scenario gets.
"""

import re

import lab

KIB = 1 << 10
MIB = 1 << 20
GIB = 1 << 30
# On base, pages outside the crash regions: at least RAM - crash - this
# (the firmware, the kernel image and NOMAP holes are not linear-mapped).
BASE_UNMAPPED_SLACK = 64 * MIB


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

    def failed(self):
        return [n for n, ok, _ in self.results if not ok]


def pte_table_span(page_size):
    """Bytes one PTE table maps: 2 MiB with 4K pages, 32 MiB with 16K,
    512 MiB with 64K."""
    return page_size * (page_size // 8)


def regions_of(values):
    """[(start, end)] from linmap's 0xSTART-0xEND values."""
    out = []
    for v in values:
        s, e = v.split("-")
        out.append((int(s, 16), int(e, 16)))
    return out


def regions(res, step="boot", nth=0):
    """Crash regions [(start, end)] from the guest's /proc/iomem records."""
    groups = res.steps(step)
    return sorted(regions_of(groups[nth].get("iomem_crash", []) if nth < len(groups) else []))


def klog(res):
    return res.all("boot", "klog")


def _int(v):
    try:
        return int(v, 0)
    except (TypeError, ValueError):
        return None


def check_boot(c, res):
    """The guest ran and reported; False when there is nothing to check."""
    if res.outcome == lab.LAB_ERROR:
        c.check("lab_steps_succeeded", False, res.error)
        return False
    return c.check("guest_reported", res.records,
                   "outcome %s, nothing on the result channel; console: %s"
                   % (res.outcome, res.console))


def check_reports(c, res, steps):
    """The result channel is complete and clean: the guest finished, ran
    every step it was given, and reported no error; no line on it is
    malformed (such a line would otherwise be dropped unseen)."""
    c.eq("guest_finished", res.outcome, lab.DONE)
    errs = res.errors()
    c.check("no_errors_reported", not errs, "; ".join(errs))
    c.check("result_channel_well_formed", not res.garbage,
            "%d malformed line(s), first: %r" % (len(res.garbage), res.garbage[:1]))
    if res.outcome == lab.DONE:
        ran = sorted({r.idx for r in res.records if r.step not in ("boot", "capture", "end")})
        # A crash ends the first kernel: the steps after it never run.
        want = []
        for i, s in enumerate(steps, 1):
            want.append(i)
            if s == "crash":
                break
        c.eq("every_step_reported", ran, want)


def check_crash_page_mapped(c, m, sfx=""):
    """Every byte of the main crash region is mapped, at page level, and
    with the memory type of the linear map around it (figures M)."""
    c.eq("crash_in_block_is_zero" + sfx, m.get("crash_in_block"), 0)
    c.eq("crash_unmapped_is_zero" + sfx, m.get("crash_unmapped"), 0)
    check_memtype(c, m, sfx)


def check_memtype(c, m, sfx=""):
    """The main crash region has the memory type of its neighbours in the
    linear map (MEM/NORMAL-TAGGED with MTE), and they agree."""
    c.eq("crash_memtype_as_around" + sfx, m.get("crash_memtype_other"), 0)
    below, above = m.get("memtype_below"), m.get("memtype_above")
    c.check("memtype_same_on_both_sides" + sfx,
            below is not None and (below == above or "-" in (below, above)),
            "below %r, above %r" % (below, above))


def hull_extra(region, page_size):
    """Bytes that the PMD blocks touched by REGION (start, end) hold besides
    it: they cannot stay blocks, so they are pages too.  Zero with 4K
    pages, where regions are 2 MiB aligned."""
    blk = pte_table_span(page_size)
    s, e = region
    return (-(-e // blk) * blk - s // blk * blk) - (e - s)


def check_shape(c, res, control, crash_total, page_size):
    """The linear map after boot against the control boot: the main crash
    region wholly page-mapped; outside it the same pages as the control
    plus, with 16K and 64K pages, at most the rest of the PMD blocks the
    region touches (its block hull); no more spans of pages that could be
    blocks than the control; at most crash/span + 2 more PTE tables.  A
    low region is ordinary memory here: it keeps its blocks."""
    m = res.map("boot")
    cm = control.map("boot")
    check_crash_page_mapped(c, m)
    got, ctl = m.get("pte_outside_crash"), cm.get("pte_outside_crash")
    mains = regions_of(m.get("crash_region", []))
    extra = sum(hull_extra(r, page_size) for r in mains)
    if extra == 0:
        c.check("pte_outside_crash_equals_control", got is not None and got == ctl,
                "got %r, control %r" % (got, ctl))
    else:
        c.check("pte_outside_crash_within_block_hull",
                got is not None and ctl is not None and ctl <= got <= ctl + extra,
                "got %r, control %r, block hull adds up to %d" % (got, ctl, extra))
    c.check("pte_spans_avoidable_as_control",
            m.get("pte_spans_avoidable") is not None
            and m.get("pte_spans_avoidable") == cm.get("pte_spans_avoidable"),
            "got %r, control %r" % (m.get("pte_spans_avoidable"), cm.get("pte_spans_avoidable")))
    span = pte_table_span(page_size)
    if cm.get("pte_tables") is None or m.get("pte_tables") is None:
        c.check("pte_tables_bounded", False, "pte_tables missing: got %r, control %r"
                % (m.get("pte_tables"), cm.get("pte_tables")))
        return
    limit = cm["pte_tables"] + -(-crash_total // span) + 2
    c.check("pte_tables_bounded", m["pte_tables"] <= limit,
            "pte_tables %s, limit %d (control %d + crash/%d MiB + 2)"
            % (m["pte_tables"], limit, cm["pte_tables"], span // MIB))


def check_twolevel_shape(c, res, ram, crash_total):
    """Two levels of page tables with crashkernel=: no block entries at all
    (makedumpfile cannot read top-level blocks), contiguous page entries
    over nearly all of RAM outside the crash regions, and the main region
    page-mapped without them."""
    m = res.map("boot")
    check_crash_page_mapped(c, m)
    c.eq("levels_from_ptdump", m.get("levels"), 2)
    c.check("no_block_entries", m.get("pud_bytes") == 0 and m.get("pmd_bytes") == 0,
            "pud %r pmd %r" % (m.get("pud_bytes"), m.get("pmd_bytes")))
    floor = ram - crash_total - 2 * BASE_UNMAPPED_SLACK
    cont = m.get("pte_cont_bytes")
    c.check("contiguous_entries_kept", cont is not None and cont >= floor,
            "pte_cont_bytes %r, want >= RAM - crash - 128 MiB = %d" % (cont, floor))


def check_base_shape(c, res, ram, crash_total, page_size):
    """The unpatched kernel with crashkernel=: the positive fact that it
    maps (nearly) all of RAM with pages, and the crash regions with them."""
    m = res.map("boot")
    floor = ram - crash_total - BASE_UNMAPPED_SLACK
    pte = m.get("pte_outside_crash")
    c.check("base_pages_outside_crash_cover_ram", pte is not None and pte >= floor,
            "pte_outside_crash %r, want >= RAM - crash - 64 MiB = %d" % (pte, floor))
    tables = m.get("pte_tables")
    want = floor // pte_table_span(page_size)
    c.check("base_pte_tables_cover_ram", tables is not None and tables >= want,
            "pte_tables %r, want >= %d" % (tables, want))
    check_crash_page_mapped(c, m)


def check_loads(c, res, image_size, invalid_elsewhere=False):
    """Every kexec -p (-c: kexec_load, -s: kexec_file_load) and the unload
    that follows it.  After a load at least the Image's size is invalid in
    the crash regions, nothing of them is unmapped, and outside them nothing
    new is invalid compared with the step before; after the unload nothing
    in the crash regions is invalid.

    INVALID_ELSEWHERE: debug_pagealloc unmaps free pages and KFENCE its
    guard pages, so the invalid bytes outside move with allocations; there
    the load may add less than one Image's worth (a protection that landed
    outside the crash regions would add at least that)."""
    runs = res.runs_all()
    loads = [(i, g) for i, g in runs if g["_step"] in ("load-c", "load-s")]
    n_of = {}
    for pos, (idx, ld) in enumerate(loads):
        how = ld["_step"]
        n_of[how] = n_of.get(how, 0) + 1
        total = sum(1 for _, g in loads if g["_step"] == how)
        sfx = how if total == 1 else "%s_%d" % (how, n_of[how])
        m = lab.map_figures(ld)
        before = None
        for i, g in runs:
            if i < idx and "map.invalid_outside" in g:
                before = lab.map_figures(g)
        c.eq("%s_rc" % sfx, ld.get("rc"), ["0"])
        c.eq("loaded_after_%s" % sfx, ld.get("crash_loaded"), ["1"])
        inv = m.get("invalid_crash")
        c.check("segments_invalid_after_%s" % sfx, inv is not None and inv >= image_size,
                "invalid bytes in the crash regions %r, Image %d" % (inv, image_size))
        c.eq("crash_unmapped_after_%s" % sfx, m.get("crash_unmapped"), 0)
        out, out0 = m.get("invalid_outside"), (before or {}).get("invalid_outside")
        if out is None or out0 is None:
            c.check("nothing_new_invalid_outside_crash_%s" % sfx, False,
                    "invalid_outside missing: after %r, before %r" % (out, out0))
        elif invalid_elsewhere:
            c.check("nothing_new_invalid_outside_crash_%s" % sfx, out - out0 < image_size,
                    "invalid outside the crash regions went from %d to %d (Image %d)"
                    % (out0, out, image_size))
        else:
            c.check("nothing_new_invalid_outside_crash_%s" % sfx, out == out0,
                    "invalid outside the crash regions went from %d to %d" % (out0, out))
        nxt = loads[pos + 1][0] if pos + 1 < len(loads) else 1 << 30
        after = [g for i, g in runs if idx < i < nxt and g["_step"] == "unload"]
        if not after:
            continue
        ul = after[0]
        c.eq("unload_rc_after_%s" % sfx, ul.get("rc"), ["0"])
        c.eq("not_loaded_after_unload_%s" % sfx, ul.get("crash_loaded"), ["0"])
        c.eq("segments_valid_after_unload_%s" % sfx, lab.map_figures(ul).get("invalid_crash"), 0)


_TAP = re.compile(r"^(not ok|ok) (\d+)(?: -)? ?(# SKIP )?([\w.-]+)")


def parse_tap(lines):
    """(plan or None, [(name, 'ok'|'fail'|'skip')]) of a kselftest's TAP."""
    plan, out = None, []
    for line in lines:
        m = re.fullmatch(r"1\.\.(\d+)", line.strip())
        if m:
            plan = int(m.group(1))
            continue
        m = _TAP.match(line)
        if m:
            res = "skip" if m.group(3) else ("ok" if m.group(1) == "ok" else "fail")
            out.append((m.group(4).rstrip(":"), res))
    return plan, out


def check_selftest(c, res, expect):
    """Every run of the kselftest: its plan matches its results, each test
    has exactly the outcome EXPECT ({name: 'ok'|'fail'|'skip'}) gives it,
    no other test appears, and the exit status agrees (0 unless a test is
    expected to fail)."""
    runs = res.steps("selftest")
    if not c.check("selftest_ran", runs, "no selftest records; console: %s" % res.console):
        return
    for n, st in enumerate(runs):
        sfx = "" if len(runs) == 1 else "_%d" % (n + 1)
        plan, got = parse_tap(st.get("tap", []))
        c.check("selftest%s_plan_matches_results" % sfx, plan is not None and plan == len(got),
                "plan %r, %d results" % (plan, len(got)))
        want_rc = "1" if "fail" in expect.values() else "0"
        c.eq("selftest%s_exit_status" % sfx, st.get("rc"), [want_rc])
        have = dict(got)
        for name, want in sorted(expect.items()):
            c.eq("selftest%s_%s_%s" % (sfx, name, want), have.get(name, "missing"), want)
        extra = sorted(set(have) - set(expect))
        c.check("selftest%s_no_unexpected_tests" % sfx, not extra, "unexpected: %s" % extra)


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
    size = _int(res.first("capture", "dump_bytes"))
    c.check("dump_written", size is not None and size > 0, "dump bytes %r" % size)
    c.check("vmcoreinfo_osrelease_is_first_kernel",
            res.first("boot", "release") is not None
            and res.first("capture", "osrelease") == res.first("boot", "release"),
            "capture %r, first kernel %r" % (res.first("capture", "osrelease"),
                                             res.first("boot", "release")))


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
    grown = (_int(sh.get("memfree_delta_kb", ["x"])[0]) or 0) * KIB
    # MemFree moves with whatever else the guest allocates meanwhile; the
    # freed pages must show up, give or take 4 MiB.
    c.check("memfree_grew_by_delta", abs(grown - delta) <= 4 * MIB,
            "MemFree grew by %d bytes, shrunk by %d" % (grown, delta))
    m = lab.map_figures(sh)
    check_crash_page_mapped(c, m, "_after_shrink")
