"""What a guest's records must show.

Each check_* function takes a Checker and a lab.Result (and what it is
compared with) and adds named checks.  They never raise on missing or
malformed records: a missing figure is a failed check, with the reason.
lab/scenarios.py decides which checks a scenario gets.
"""

import re

import lab
import variants
import vmcore

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
        self.notes = []     # what was not checked, and why (neither pass nor fail)

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


regions_of = lab.regions_of


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


def check_reports(c, res, steps, lost=False):
    """The result channel is complete and clean: the guest finished, ran
    every step it was given, and reported no error; no line on it is
    malformed (such a line would otherwise be dropped unseen).  LOST: the
    capture must fail, so the guest must not finish."""
    if lost:
        c.eq("guest_did_not_finish", res.outcome, lab.NO_RESULT)
    else:
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


def check_regions_apart(c, m, sfx=""):
    """The crash regions, main and low, have leaf entries of their own (no
    block or contiguous run crosses one of their edges, so they can be
    made invalid without a split), are wholly mapped, and have the memory
    type of the linear map around them (figures M)."""
    c.eq("crash_edges_in_leaf_is_zero" + sfx, m.get("crash_edges_in_leaf"), 0)
    c.eq("crash_unmapped_is_zero" + sfx, m.get("crash_unmapped"), 0)
    check_memtype(c, m, sfx)


def check_apart_shape(c, res, control, page_size):
    """The series, with the line's block-keeping rodata=: the crash regions
    mapped apart (check_regions_apart), their blocks kept; outside them the
    same page mappings as the control, plus with 16K and 64K pages at most
    the rest of the PMD blocks the regions touch; no more spans of pages
    that could be blocks than the control; and at most two more page-table pages
    (PMD and PTE tables) per region than the control, the split blocks
    their edges fall in."""
    m, cm = res.map("boot"), control.map("boot")
    check_regions_apart(c, m)
    regs = regions_of(m.get("crash_region", []) + m.get("crash_low_region", []))
    extra = sum(hull_extra(r, page_size) for r in regs)
    check_pages_against_control(c, m, cm, extra)
    keys = ("pte_tables", "pmd_tables")
    if any(m.get(k) is None or cm.get(k) is None for k in keys):
        c.check("table_pages_bounded", False, "tables missing: got %r, control %r"
                % ([m.get(k) for k in keys], [cm.get(k) for k in keys]))
        return
    more = sum(m[k] for k in keys) - sum(cm[k] for k in keys)
    c.check("table_pages_bounded", 0 <= more <= 2 * len(regs),
            "%d more PMD+PTE tables than the control (pte %d/%d, pmd %d/%d), %d region(s)"
            % (more, m["pte_tables"], cm["pte_tables"], m["pmd_tables"], cm["pmd_tables"],
               len(regs)))


def check_pages_against_control(c, m, cm, extra):
    """Page entries outside the crash regions: at most EXTRA (their block
    hull) more than the control boot's CM, unless EXTRA is None; and no
    more spans of pages that could be blocks than the control."""
    got, ctl = m.get("pte_outside_crash"), cm.get("pte_outside_crash")
    if extra is not None:
        c.check("pte_outside_crash_within_block_hull",
                got is not None and ctl is not None and ctl <= got <= ctl + extra,
                "got %r, control %r, block hull adds up to %d" % (got, ctl, extra))
    c.check("pte_spans_avoidable_as_control",
            m.get("pte_spans_avoidable") is not None
            and m.get("pte_spans_avoidable") == cm.get("pte_spans_avoidable"),
            "got %r, control %r" % (m.get("pte_spans_avoidable"), cm.get("pte_spans_avoidable")))


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


def check_blocks_as_control(c, res, control):
    """A kernel that does nothing for its crash region (6.12 without the
    series): the very same linear map as without crashkernel=, and so the
    main crash region inside blocks, where set_memory_valid() cannot reach
    the loaded capture kernel."""
    m, cm = res.map("boot"), control.map("boot")
    for key in ("pud_bytes", "pmd_bytes", "pte_bytes", "pte_tables"):
        c.check("same_%s_as_control" % key, m.get(key) is not None and m.get(key) == cm.get(key),
                "got %r, control %r" % (m.get(key), cm.get(key)))
    inb = m.get("crash_in_block")
    c.check("crash_region_in_blocks", inb is not None and inb > 0,
            "bytes of the main crash region mapped by blocks: %r" % inb)


def check_pages_but_kernel_alias(c, res, page_size):
    """rodata=full or debug_pagealloc on 6.12: the linear map is pages
    except the linear alias of the kernel text ("Kernel code"), which 6.12
    maps with PMD blocks where they fit, as it is never changed."""
    m = res.map("boot")
    blk = pte_table_span(page_size)
    code = regions_of(res.all("boot", "kernel"))[:1]
    hull = sum(e - s + hull_extra((s, e), page_size) for s, e in code)
    pmd = m.get("pmd_bytes")
    c.check("pages_but_the_kernel_alias", code and m.get("pud_bytes") == 0
            and pmd is not None and pmd <= hull,
            "pud %s pmd %s, Kernel code %s, its %d-byte block hull %d"
            % (m.get("pud_bytes"), pmd, [(hex(s), hex(e)) for s, e in code], blk, hull))
    # ... and the pages cover the rest of RAM, wherever the blocks are.
    ram = sum(e - s for s, e in regions_of(res.all("boot", "ram")))
    crash = sum(e - s for s, e in regions(res))
    floor = ram - crash - hull - BASE_UNMAPPED_SLACK
    pte = m.get("pte_outside_crash")
    c.check("pages_cover_the_rest_of_ram", ram > 0 and pte is not None and pte >= floor,
            "pte_outside_crash %r, want >= RAM - crash - kernel hull - 64 MiB = %d" % (pte, floor))


def fault_pa(text, res):
    """The physical address of the linear-map address in an oops line
    ("... at virtual address ffff...") of TEXT, from the VMCOREINFO the
    capture kernel reported; None when either is missing."""
    m = re.search(r"virtual address ([0-9a-f]{16})", text or "")
    info = vmcore.vmcoreinfo(res)
    if not m or "NUMBER(VA_BITS)" not in info or "NUMBER(PHYS_OFFSET)" not in info:
        return None
    return vmcore.linear_pa(int(m.group(1), 16), info)


def stray_load_map(res):
    """The map figures of the last step before "stray" that reported
    them (the load; steps like pattern or selftest report none)."""
    prev = {}
    for _, g in res.runs_all():
        if g["_step"] == "stray":
            return prev
        if any(k.startswith("map.") for k in g):
            prev = lab.map_figures(g)
    return {}


def check_stray(c, res, protects, control=None):
    """The "stray" step wrote zeros over the main crash region through the
    linear map (/dev/mem) while a capture kernel was loaded.  With the
    protection the write faults (an oops that kills the writer) at a page
    of the region, which can only be one of the loaded segments, and the
    capture that follows must work (check_capture).  Without it the write
    goes through, the crashed kernel enters the capture kernel and that,
    zeroed, never boots; CONTROL, the same boot and crash without the
    stray write, must capture, so that the loss is the write's doing."""
    st = res.steps("stray")
    target, rc = res.first("stray", "target"), res.first("stray", "rc")
    oops = _int(res.first("stray", "oops"))
    c.check("stray_write_ran", st and target, "stray step records: %r" % st)
    if protects:
        c.check("stray_write_faulted", rc not in (None, "0") and oops is not None and oops > 0,
                "writer exit status %r, new oopses %r (target %s)" % (rc, oops, target))
        # The write runs upwards from the region's start: it must fault in
        # the region it wrote to, at the first page the map reported
        # invalid after the load before it (the region's first page when
        # the whole region is protected, the first loaded segment's
        # otherwise), not anywhere in the region.
        pa, regs = fault_pa(res.first("stray", "oops_line"), res), regions_of([target] if target else [])
        first = stray_load_map(res).get("first_invalid_crash")
        first = first if isinstance(first, int) else None
        page = variants.page_size(c.variant)
        c.check("stray_fault_at_first_invalid_page",
                pa is not None and _inside(pa, regs) and first is not None
                and pa // page == first // page,
                "fault at PA %s (%r), target %s, first invalid page of the region after the "
                "load %s" % (pa and hex(pa), res.first("stray", "oops_line"), target,
                             first and hex(first)))
        return
    c.check("stray_write_went_through", rc == "0" and oops == 0,
            "writer exit status %r, new oopses %r (target %s)" % (rc, oops, target))
    c.check("crash_triggered", res.first("crash", "marker"), "no crash step")
    try:
        with open(res.console, errors="replace") as f:
            console = f.read()
    except OSError as e:
        console = ""
        c.check("console_readable", False, str(e))
    c.check("capture_kernel_entered", "Starting crashdump kernel..." in console,
            "no 'Starting crashdump kernel...' on the console %s" % res.console)
    n = console.count("Booting Linux on physical CPU")
    c.eq("capture_kernel_never_booted", n, 1)
    c.check("capture_lost", not res.steps("capture"),
            "the capture kernel reported although its memory was overwritten: %d records"
            % len(res.steps("capture")))
    c.check("same_layout_captures_without_stray_write",
            control is not None and bool(control.steps("capture"))
            and control.first("capture", "makedumpfile_rc") == "0",
            "control %s: %s" % (control and control.name,
                                control and "%d capture records" % len(control.steps("capture"))))


def check_loads(c, res, image_size, invalid_elsewhere=False, protects=True, whole=False):
    """Every kexec -p (-c: kexec_load, -s: kexec_file_load) and the unload
    that follows it.  After a load at least the Image's size is invalid in
    the crash regions, nothing of them is unmapped, and outside them nothing
    new is invalid compared with the step before; after the unload nothing
    in the crash regions is invalid.

    INVALID_ELSEWHERE: debug_pagealloc unmaps free pages and KFENCE its
    guard pages, so the invalid bytes outside move with allocations; there
    the load may add less than one Image's worth (a protection that landed
    outside the crash regions would add at least that).

    PROTECTS False: a kernel without the protection (6.12): after a load
    nothing in the crash regions is invalid.  WHOLE: the protection covers
    the whole regions, main and low (7.3): after a load every byte of them
    is invalid, and after the unload none."""
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
        if protects and whole:
            # The regions' sizes from the guest's own /proc/iomem records
            # of the last step before the load that took them (boot, or a
            # shrink), not from linmap, which reports the invalid bytes:
            # the main region is the highest, the others are low.
            regs = []
            for i, g in runs:
                if i < idx and "iomem_crash" in g:
                    regs = sorted(regions_of(g["iomem_crash"]))
            want_main = regs[-1][1] - regs[-1][0] if regs else None
            want_low = sum(e - s for s, e in regs[:-1])
            c.check("whole_regions_invalid_after_%s" % sfx,
                    want_main and inv == want_main and m.get("crash_bytes") == want_main
                    and m.get("low_bytes") == want_low and m.get("invalid_low") == want_low,
                    "invalid %r of %r bytes in the main region, %r of %r in the low; "
                    "iomem before the load: main %r, low %d"
                    % (inv, m.get("crash_bytes"), m.get("invalid_low"), m.get("low_bytes"),
                       want_main, want_low))
        elif protects:
            c.check("segments_invalid_after_%s" % sfx, inv is not None and inv >= image_size,
                    "invalid bytes in the crash regions %r, Image %d" % (inv, image_size))
        else:
            c.eq("segments_left_valid_after_%s" % sfx, inv, 0)
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
        if whole:
            c.eq("low_region_valid_after_unload_%s" % sfx,
                 lab.map_figures(ul).get("invalid_low"), 0)


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


def skip_reasons(lines):
    """{name: reason} of the skipped tests of a kselftest's TAP ("ok N #
    SKIP name: reason")."""
    out = {}
    for line in lines:
        m = re.match(r"^ok \d+ # SKIP ([\w.-]+):? ?(.*)$", line.strip())
        if m:
            out[m.group(1)] = m.group(2)
    return out


def check_selftest(c, res, expect, reasons=None):
    """Every run of the kselftest: its plan matches its results, each test
    has exactly the outcome EXPECT ({name: 'ok'|'fail'|'skip'}) gives it,
    no other test appears, and the exit status agrees (0 unless a test is
    expected to fail).  REASONS ({name: text}): a test expected to skip
    must skip for that reason (its TAP line has TEXT), not for another,
    such as a step of the lab that went wrong."""
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
        why = skip_reasons(st.get("tap", []))
        for name, text in sorted((reasons or {}).items()):
            if expect.get(name) == "skip" and have.get(name) == "skip":
                c.check("selftest%s_%s_skips_for_its_reason" % (sfx, name),
                        text in why.get(name, ""),
                        "skipped with %r, expected %r" % (why.get(name), text))


def check_capture(c, res, refuses=None):
    """The capture: vmcore-dmesg, makedumpfile --dump-dmesg and the -d 31
    dump.  REFUSES: the message makedumpfile is known to stop with on this
    geometry (vmcore.makedumpfile_refuses); then it must stop with exactly
    that, and vmcore-dmesg alone shows the capture."""
    marker = res.first("crash", "marker")
    if refuses:
        c.check("crash_triggered", marker, "no crash step")
        c.check("capture_kernel_reported", res.steps("capture"),
                "no capture records; console: %s" % res.console)
        c.eq("vmcore_dmesg_rc", res.first("capture", "vmcore_dmesg_rc"), "0")
        c.eq("vmcore_dmesg_has_marker", res.first("capture", "marker_found"), marker)
        log = res.all("capture", "makedumpfile_log")
        c.check("makedumpfile_stops_only_for_the_known_reason",
                res.first("capture", "makedumpfile_rc") == "1"
                and any(refuses in line for line in log),
                "makedumpfile rc %r, log %r; expected it to stop with %r"
                % (res.first("capture", "makedumpfile_rc"), log[:3], refuses))
        c.notes.append("makedumpfile: %s (known limitation of Debian 12's 1.7.2)" % refuses)
        return
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
    regs = regions(res)
    before = sum(e - s for s, e in regs)
    after = sum(e - s for s, e in regions(res, "shrink"))
    c.eq("iomem_crash_shrunk_by_delta", before - after, delta)
    # kexec_crash_size counts both regions where a shrink may swap them
    # (variants.KERNELS swap); on 6.1 it is the main (highest) region's.
    counted = before
    if not variants.LINE["swap"] and regs:
        counted = max(regs)[1] - max(regs)[0]
    c.eq("kexec_crash_size_after_shrink", sh.get("crash_size"), [str(counted - delta)])
    # MemTotal (the managed pages) grows by exactly what was given back.
    total = _int(sh.get("memtotal_delta_kb", ["x"])[0])
    c.check("memtotal_grew_by_delta", total is not None and total * KIB == delta,
            "MemTotal grew by %r KiB, shrunk by %d bytes" % (total, delta))
    # MemFree moves with whatever else the guest allocates meanwhile, and
    # does not count freed pages still on the per-CPU lists (up to their
    # high mark, MiBs with 64K pages): at least half must show up, and no
    # more than 4 MiB beyond the delta.
    grown = (_int(sh.get("memfree_delta_kb", ["x"])[0]) or 0) * KIB
    c.check("memfree_grew_by_delta", delta // 2 <= grown <= delta + 4 * MIB,
            "MemFree grew by %d bytes, shrunk by %d" % (grown, delta))
    check_regions_apart(c, lab.map_figures(sh), "_after_shrink")


PHYS_MASK = (1 << 48) - 1
BLOCK_LABELS = {"64KB": 64 << 10, "2MB": 2 * MIB, "32MB": 32 * MIB, "512MB": 512 * MIB,
                "1GB": GIB, "64GB": 64 * GIB, "4TB": 4 << 40}


def check_analysis(c, res, page_size, slot, invalid_elsewhere=False, expect_blocks=None,
                   protects=True):
    """What crash makes of the dump(s) of a crash scenario (lab/vmcore.py):
    the dump left the guest intact, crash opens it, `sys`, `log`, `bt` and
    `kmem -i` show the crash that was triggered, and a vtop of every 2 MiB
    of RAM walks the dump's page tables to the physical address the linear
    map stands for.  SLOT: the size of the slot the series rebuilds around
    a late region (variants.split_slot_size); EXPECT_BLOCKS: True when the
    linear map must have block entries, False when it must have none,
    None when either is fine; PROTECTS: whether the kernel invalidates the
    loaded capture kernel (see check_vtop)."""
    an = getattr(res, "analysis", None)
    if an and all(a.error.startswith("not analysed") for a in an.values()):
        # Neither a pass nor a failure: said in the TAP output as a comment.
        c.notes += sorted({a.error for a in an.values()})
        return
    if not c.check("dump_analysed", an, "no analysis (guest outcome %s)" % res.outcome):
        return
    for name, a in sorted(an.items()):
        sfx = "" if name == "kdump" else "_" + name
        if not a.doctored:
            check_one_analysis(c, res, a, name, page_size, slot, invalid_elsewhere,
                               expect_blocks, protects)
            continue
        # A dump damaged on purpose (vmcore.doctor): the same checks must
        # see it, by the check that looks at what was damaged: the walk
        # for the flipped PTE, crash itself for the cut dump.
        bad = Checker(c.scenario, c.variant)
        check_one_analysis(bad, res, a, name, page_size, slot, invalid_elsewhere, expect_blocks,
                           protects)
        must = ("crash_vtop_linear_map_consistent" if "pte" in name else "crash_ran") + sfx
        c.check("damaged_dump_fails_checks" + sfx, must in bad.failed(),
                "damage: %s; failing checks: %s; %s must be among them"
                % (a.doctored, bad.failed() or "none", must))


def check_one_analysis(c, res, a, name, page_size, slot, invalid_elsewhere, expect_blocks,
                       protects=True):
    sfx = "" if name == "kdump" else "_" + name
    for what, ok, detail in a.transfer:
        c.check(what, ok, detail)
    out = a.outputs
    if not c.check("crash_ran" + sfx, not a.error and a.rc == 0 and "end" in out,
                   a.error or "crash exit %s, %s; %s" % (
                       a.rc, "finished" if "end" in out else "stopped early",
                       (out.get("_head") or "").strip()[-300:])):
        return
    sysf = vmcore.parse_sys(out.get("sys"))
    c.check("crash_sys_release_is_first_kernel" + sfx,
            res.first("boot", "release") and sysf.get("RELEASE") == res.first("boot", "release"),
            "crash sys RELEASE %r, first kernel %r" % (sysf.get("RELEASE"),
                                                      res.first("boot", "release")))
    if res.first("stray", "oops_line"):
        # The dump's log has the stray write's oops, the first in it, at
        # an address of the crash region.  (crash 8.0.2 also names it as
        # the panic in `sys`; 9.0.2 names the sysrq panic that followed.)
        oops = [ln for ln in (out.get("log") or "").splitlines()
                if "Unable to handle kernel" in ln]
        pa = fault_pa(oops[0], res) if oops else None
        c.check("crash_log_shows_stray_write_oops" + sfx,
                pa is not None and _inside(pa, regions(res)),
                "first oops in crash's log %r: PA %s, crash regions %s"
                % (oops[:1], pa and hex(pa), regions(res)))
    else:
        c.check("crash_sys_panic_is_sysrq" + sfx,
                "sysrq triggered crash" in sysf.get("PANIC", ""),
                "crash sys PANIC %r" % sysf.get("PANIC"))
    marker = res.first("crash", "marker")
    c.check("crash_log_has_marker" + sfx, marker and ("lab marker %s" % marker) in
            (out.get("log") or ""), "no 'lab marker %s' in crash's log (%d lines)"
            % (marker, len((out.get("log") or "").splitlines())))
    frames = vmcore.parse_bt(out.get("bt"))
    want = ["sysrq_handle_crash", "__handle_sysrq", "write_sysrq_trigger"]
    c.check("crash_bt_shows_sysrq_crash" + sfx, all(f in frames for f in want),
            "bt frames %s, want %s" % (frames[:12], want))
    total = vmcore.parse_kmem_total(out.get("kmem"))
    memtotal = _int(res.first("crash", "memtotal_kb"))
    c.check("crash_kmem_total_is_memtotal" + sfx,
            total is not None and memtotal is not None and total * page_size == memtotal * KIB,
            "kmem -i TOTAL MEM %r pages of %d, first kernel MemTotal %r kB"
            % (total, page_size, memtotal))
    check_vtop(c, res, a, sfx, slot, invalid_elsewhere, expect_blocks, protects)
    if res.steps("pattern") and name in ("kdump", "elf"):
        check_pattern(c, res, a, name, slot)


def _inside(pa, ranges):
    return any(s <= pa < e for s, e in ranges)


def check_vtop(c, res, a, sfx, slot, invalid_elsewhere, expect_blocks, protects=True):
    """Every sampled linear-map address resolves, by crash's walk of the
    dump's page tables, to the physical address it stands for; in the
    crash regions the loaded capture kernel's pages are invalid (the
    protection, seen from the dump), or with PROTECTS False none is."""
    got = {}
    for key, text in a.outputs.items():
        if key.startswith("vtop"):
            got.update(vmcore.parse_vtop(text))
    crash = regions(res)
    kernel = regions_of(res.all("boot", "kernel"))
    # "Kernel data" (the second record): its linear alias is invalid on
    # purpose where the kernel unmaps it (variants.KERNELS).
    data = kernel[1:] if variants.LINE["data_alias_invalid"] else []
    slots = late_slots(res, slot)
    missing, wrong, invalid_out, bad_invalid = [], [], [], []
    n_inv_in = n_blocks = n_kernel = n_slot = n_data = 0
    for pa, va in a.vtop_points:
        w = got.get(va)
        if w is None:
            missing.append(hex(va))
            continue
        if w.pa is None:
            # An invalid entry that still names PA: set_memory_valid(0)
            # cleared only its valid bit, as the protection does.
            # A block names its base (whole blocks are invalidated on 7.3).
            named = None if w.entry is None else w.entry & PHYS_MASK & ~0xfff
            if named is None or w.entry & 1 or (
                    named != pa and named not in {pa & ~(b - 1) for b in BLOCK_LABELS.values()}):
                bad_invalid.append("%#x: %s" % (pa, w.entry and hex(w.entry)))
            elif _inside(pa, crash):
                n_inv_in += 1
            elif _inside(pa, data):
                n_data += 1
            else:
                invalid_out.append(hex(pa))
            continue
        if w.block and w.block not in BLOCK_LABELS:
            wrong.append("%#x: unknown block %s" % (pa, w.block))
            continue
        base = pa & ~(BLOCK_LABELS[w.block] - 1) if w.block else pa
        if w.pa != base:
            wrong.append("%#x -> %#x" % (pa, w.pa))
            continue
        n_blocks += bool(w.block)
        n_kernel += _inside(pa, kernel)
        n_slot += _inside(pa, slots) and not _inside(pa, crash)
    n = len(a.vtop_points)
    c.check("crash_vtop_sampled_all_ram" + sfx, n > 0 and not missing,
            "%d points, %d without an answer: %s" % (n, len(missing), missing[:5]))
    c.check("crash_vtop_linear_map_consistent" + sfx, n > 0 and not wrong and not bad_invalid,
            "%d of %d points walk to another address: %s; invalid entries that do not "
            "name their page: %s" % (len(wrong), n, wrong[:5], bad_invalid[:5]))
    if not invalid_elsewhere:
        c.check("crash_vtop_valid_outside_crash_regions" + sfx, not invalid_out,
                "%d invalid points outside the crash regions: %s"
                % (len(invalid_out), invalid_out[:5]))
    if protects:
        c.check("crash_vtop_capture_kernel_protected" + sfx, n_inv_in > 0,
                "no invalid entry in the crash regions %s: the loaded capture kernel is not "
                "protected in the dump's page tables" % [(hex(s), hex(e)) for s, e in crash])
    else:
        c.check("crash_vtop_capture_kernel_unprotected" + sfx, n_inv_in == 0,
                "%d invalid points in the crash regions of a kernel without the protection"
                % n_inv_in)
    if data:
        c.check("crash_vtop_kernel_data_alias_invalid" + sfx, n_data > 0,
                "no invalid point in the kernel's data %s, whose linear alias this "
                "kernel unmaps" % [(hex(s), hex(e)) for s, e in data])
    c.check("crash_vtop_kernel_alias_consistent" + sfx, n_kernel > 0,
            "%d points in the kernel image's linear alias %s resolved"
            % (n_kernel, [(hex(s), hex(e)) for s, e in kernel]))
    # The blocks split around a region mapped apart at boot, where they
    # have RAM besides the region (the series only; nothing is split
    # otherwise).  A protecting kernel that keeps blocks logs each region
    # it maps apart: without that line, the slot check would vanish.
    if protects and expect_blocks and crash:
        c.check("crash_vtop_split_slots_logged" + sfx, slots,
                "no 'mapped apart from the linear map' line for the crash regions %s"
                % [(hex(s), hex(e)) for s, e in crash])
    if any(_inside(pa, slots) and not _inside(pa, crash) for pa, _ in a.vtop_points):
        c.check("crash_vtop_rebuilt_slot_consistent" + sfx, n_slot > 0,
                "%d points outside the region in its slot %s resolved"
                % (n_slot, [(hex(s), hex(e)) for s, e in slots]))
    if expect_blocks is not None:
        c.check("crash_vtop_%s" % ("sees_blocks" if expect_blocks else "sees_no_blocks") + sfx,
                (n_blocks > 0) == expect_blocks,
                "%d of %d points mapped by a block entry" % (n_blocks, n))


def late_slots(res, slot):
    """The slots the series rebuilt: those of SLOT bytes around each region
    its log says it mapped apart at boot, the blocks its edges fall in
    ([] when it mapped none apart)."""
    out = []
    for line in klog(res):
        m = re.search(r"\[mem (0x[0-9a-f]+)-(0x[0-9a-f]+)\] mapped apart from the linear map",
                      line)
        if m:
            s, e = int(m.group(1), 16), int(m.group(2), 16) + 1
            out.append((s // slot * slot, (e + slot - 1) // slot * slot))
    return out


def check_pattern(c, res, a, name, slot):
    """The pattern the guest wrote (lab/guest/pattern.c): written, some of
    it in the slot the series rebuilt, and, in the unfiltered (ELF) dump,
    read back by physical address, walked to through the dump's page
    tables, and read through the linear map.  The filtered dump leaves
    page-cache pages out."""
    p = res.steps("pattern")
    if name == "kdump":
        if not c.check("pattern_written", p and p[0].get("rc") == ["0"],
                       "pattern step %r" % (p[0] if p else None)):
            return
        slots = late_slots(res, slot)
        if slots:
            pages = [int(v, 16) for v in p[0].get("page", [])]
            inside = [x for x in pages if _inside(x, slots) and not _inside(x, regions(res))]
            c.check("pattern_pages_in_rebuilt_slot", inside,
                    "%d of the pattern's sampled pages %s in the rebuilt slots %s"
                    % (len(inside), [hex(x) for x in pages],
                       [(hex(s), hex(e)) for s, e in slots]))
        return
    bad_p, bad_v, bad_w = [], [], []
    walks = vmcore.parse_vtop("\n".join(a.outputs.get("vtopp%d" % i, "")
                                        for i in range(len(a.pattern))))
    for i, (pa, va) in enumerate(a.pattern):
        want = vmcore.pattern_words(pa)
        if vmcore.parse_rd(a.outputs.get("rdp%d" % i)) != want:
            bad_p.append(hex(pa))
        if vmcore.parse_rd(a.outputs.get("rdv%d" % i)) != want:
            bad_v.append(hex(va))
        w = walks.get(va)
        size = BLOCK_LABELS.get(w.block, 0) if w and w.block else 1
        if w is None or w.pa is None or not size or w.pa != pa & ~(size - 1):
            bad_w.append("%#x -> %s" % (va, w and w.pa is not None and hex(w.pa)))
    sfx = "_" + name
    c.check("crash_rd_pattern_by_physical_address" + sfx, a.pattern and not bad_p,
            "%d pages, wrong: %s" % (len(a.pattern), bad_p))
    c.check("crash_vtop_pattern_pages_walk_to_their_page" + sfx, a.pattern and not bad_w,
            "%d pages, wrong: %s" % (len(a.pattern), bad_w))
    # crash reads linear-map addresses by arithmetic, not through the page
    # tables (the walk above is the page-table check): this is its reader.
    c.check("crash_rd_pattern_by_linear_address" + sfx, a.pattern and not bad_v,
            "%d pages, wrong: %s" % (len(a.pattern), bad_v))
