"""Unit tests that make fail the checks no other unit test made fail
(tests/check_coverage.py lists them): the scenario-level checks of
scenarios.evaluate (control and "nothing" shapes, the forced branch
without blocks, a missing control, a wrong log line, truncated records),
the load/unload checks of every load of a cycle, the capture and shrink
checks, the checks of the ELF dump, the transfer of the dumps off the
guest's disk (the SHA-256 comparison of vmcore.extract()) and the damaged
dump of vmcore.doctor() whose flipped PTE crash does not see.

Each check fails on a realistic bad value: a wrong figure, a wrong log
line, a record missing where the scenario needs it.  The samples are the
recorded 6.1 runs of tests/data (crash-plain-512M: 8G, crashkernel=512M,
load-c, crash; crash-fulldump-1G: 1G, crashkernel=256M, pattern, load-c,
crash, with what crash printed for both dumps).  Nothing here depends on
KERNEL: scenario tables and the kernel line's properties are set by each
test for the time it runs."""

import gzip
import hashlib
import os
import re
import sys
import tempfile
import unittest
from unittest import mock

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import checks as C  # noqa: E402
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import variants  # noqa: E402
import vmcore  # noqa: E402
from test_lab import DATA, IMAGE, TAP_OK, doctored, failed, recorded, setval  # noqa: E402

MIB, GIB = 1 << 20, 1 << 30
G4 = 4 * GIB
PLAIN = "results-crash-plain-512M.txt"      # region 0xe0000000-0x100000000
FULL = "results-crash-fulldump-1G.txt"      # region 0x6ee00000-0x7ee00000, slot 1G
REGION = 512 * MIB


def plain():
    return recorded(PLAIN)


def with_records(res, recs, outcome=None):
    return lab.Result(res.name, outcome or lab.outcome_of(recs), recs, res.console, 0.0,
                      garbage=list(res.garbage))


def setat(idx, step, key, value):
    """setval for the run IDX of STEP only."""
    def fn(r):
        if r.idx == idx and r.step == step and r.key == key:
            r.value = value
        return r
    return fn


def drop(pred):
    return lambda r: None if pred(r) else r


# ---------------------------------------------------------------------------
# Boots built from the recorded 8G boot: a control boot (no crashkernel=),
# its figures those the series boot has outside its region.
# ---------------------------------------------------------------------------

# The figures of the control boot recorded with the sample (6.1.192 and the
# series, 8G, no crashkernel=): 1G blocks where the series' region splits
# one into 2M blocks.
CONTROL_MAP = {"pud_bytes": 7 << 30, "pmd_bytes": 1069547520, "pte_bytes": 4 * MIB,
               "pte_outside_crash": 4 * MIB, "pte_tables": 2, "pmd_tables": 1,
               "pte_spans_avoidable": 0, "crash_edges_in_leaf": 0,
               "crash_bytes": 0, "crash_in_block": 0, "crash_unmapped": 0,
               "invalid_crash": 0, "invalid_outside": 0, "crash_memtype_other": 0,
               "memtype_below": "-", "memtype_above": "-", "levels": 4}


def boot(figs=None, klog=(), crash=None):
    """A guest that booted (no steps) with the recorded boot's records but
    no crash region (or CRASH, a 0xS-0xE region), the linear-map figures
    FIGS (default: the control's) and the crashkernel log lines KLOG."""
    r = plain()
    out = [x for x in r.records if x.step == "boot" and not x.key.startswith("map.")
           and x.key not in ("iomem_crash", "klog")]
    out += [lab.Record(0, "boot", "klog", line) for line in klog]
    if crash:
        out.append(lab.Record(0, "boot", "iomem_crash", crash))
    out += [lab.Record(0, "boot", "map." + k, str(v)) for k, v in (figs or CONTROL_MAP).items()]
    out.append(lab.Record(1, "end", "done", "1"))
    return with_records(r, out)


def evaluate(name, specs, results, line="6.1"):
    """SC.evaluate of NAME with the scenario table SPECS and the kernel
    line LINE's properties (6.1: the recorded samples' line), whatever
    KERNEL is."""
    for res in results.values():
        if res.analysis is None:
            res.analysis = {"kdump": vmcore.Analysis(error="not analysed: unit test")}
    with mock.patch.dict(variants.LINE, variants.KERNELS[line]), \
            mock.patch.dict(SC.SCENARIOS, specs, clear=True):
        return SC.evaluate(name, results, image_size=IMAGE).failed()


def crash_spec(**kw):
    """The recorded scenario, crash-plain-512M (6.1)."""
    args = dict(cmdline="crashkernel=512M", steps=["load-c", "crash"],
                regions=[(REGION, 0, G4)], rodata="on")
    args.update(kw)
    return SC.sc(**args)


class Scenario(unittest.TestCase):
    """scenarios.evaluate: what a scenario states about its boot."""

    def test_recorded_passes(self):
        self.assertEqual(evaluate("t", {"t": crash_spec()}, {"t": plain()}), [])

    def test_guest_that_never_reported(self):
        """QEMU ran, the guest died before its first record."""
        dead = lab.Result("t", lab.NO_RESULT, [], "console.log", 0.0)
        self.assertEqual(evaluate("t", {"t": crash_spec()}, {"t": dead}), ["guest_reported"])

    def test_region_of_another_size_or_place(self):
        """crashkernel=512M reserved 256M, or above 4 GiB."""
        # 256M: the whole region the guest reported is not what the load
        # made invalid (512M), which fails the protection check too.
        for region, also in (("0xf0000000-0x100000000", ["whole_regions_invalid_after_load-c"]),
                             ("0x220000000-0x240000000", [])):
            bad = doctored(plain(), setval("boot", "iomem_crash", region))
            self.assertEqual(evaluate("t", {"t": crash_spec()}, {"t": bad}),
                             ["crash_regions_as_expected"] + also, region)

    def test_truncated_record(self):
        """A record cut short on the channel (the region's end missing):
        evaluation stops, and says so, instead of raising."""
        bad = doctored(plain(), setval("boot", "iomem_crash", "0xe0000000-"))
        self.assertEqual(evaluate("t", {"t": crash_spec()}, {"t": bad}), ["records_complete"])

    def test_log_line_of_another_path(self):
        """The scenario wants the region mapped apart; the kernel logged
        that it could not."""
        spec = crash_spec(log=SC.APART)
        self.assertEqual(evaluate("t", {"t": spec}, {"t": plain()}), [])
        bad = doctored(plain(), lambda r: lab.Record(
            r.idx, r.step, r.key,
            "crashkernel: [mem 0xe0000000-0xffffffff] not mapped apart (-12): it may not be "
            "protected") if r.key == "klog" and SC.APART in r.value else r)
        self.assertEqual(evaluate("t", {"t": spec}, {"t": bad}),
                         ["kernel_log_says_mapped_apart_from_the_linear_map"])

    def test_shape_without_its_control(self):
        """The control boot hung: the shape cannot be compared, and that
        is a failure, not a pass."""
        spec = crash_spec(shape="shape", control="ctl")
        good = {"t": plain(), "ctl": boot()}
        specs = {"t": spec, "ctl": SC.sc(shape="control", rodata="on")}
        self.assertEqual(evaluate("t", specs, good), [])
        hung = doctored(boot(), drop(lambda r: r.step == "end"))
        self.assertEqual(evaluate("t", specs, {"t": plain(), "ctl": hung}), ["control_available"])
        self.assertEqual(evaluate("t", specs, {"t": plain()}), ["control_available"])

    def test_control_shape(self):
        """The control boot: no crash region, blocks in the linear map."""
        specs = {"ctl": SC.sc(shape="control", rodata="on")}
        self.assertEqual(evaluate("ctl", specs, {"ctl": boot()}), [])
        # crashkernel= left on the control's command line.
        self.assertEqual(evaluate("ctl", specs, {"ctl": boot(crash="0xe0000000-0x100000000")}),
                         ["no_crash_region"])
        # rodata=full (or debug_pagealloc) on the control: all pages.
        pages = dict(CONTROL_MAP, pud_bytes=0, pmd_bytes=0, pte_bytes=8 << 30,
                     pte_outside_crash=8 << 30, pte_tables=4096)
        self.assertEqual(evaluate("ctl", specs, {"ctl": boot(pages)}), ["linear_map_has_blocks"])

    NOTHING_LOG = "crashkernel: invalid crashkernel= value, nothing reserved"

    def nothing(self, figs=None, crash=None, klog=None):
        specs = {"t": SC.sc(cmdline="crashkernel=foo", shape="nothing", rodata="on",
                            log="invalid crashkernel= value, nothing reserved", control="ctl"),
                 "ctl": SC.sc(shape="control", rodata="on")}
        bad = boot(figs, [self.NOTHING_LOG] if klog is None else klog, crash)
        return evaluate("t", specs, {"t": bad, "ctl": boot()})

    def test_nothing_shape(self):
        """Bad input: nothing reserved, the very same map as the control."""
        self.assertEqual(self.nothing(), [])
        # Reserved all the same (the map inside blocks, as the generic
        # reservation leaves it).
        self.assertEqual(self.nothing(crash="0xe0000000-0x100000000"), ["no_crash_region"])
        # A 1G block split into PMD entries, as if a region were mapped apart.
        split = dict(CONTROL_MAP, pud_bytes=5 << 30, pmd_bytes=CONTROL_MAP["pmd_bytes"] + GIB)
        self.assertEqual(self.nothing(split),
                         ["same_pud_bytes_as_control", "same_pmd_bytes_as_control"])
        # One 2 MiB block page-mapped: one more PTE table.
        pages = dict(CONTROL_MAP, pmd_bytes=CONTROL_MAP["pmd_bytes"] - 2 * MIB,
                     pte_bytes=6 * MIB, pte_outside_crash=6 * MIB, pte_tables=3)
        self.assertEqual(self.nothing(pages),
                         ["same_pmd_bytes_as_control", "same_pte_bytes_as_control",
                          "same_pte_tables_as_control"])
        # The reason logged is another one.
        self.assertEqual(self.nothing(klog=["crashkernel: size is zero"]),
                         ["kernel_log_says_invalid_crashkernel=_value,_nothing_rese"])

    def test_forced_shape_on_a_line_without_alias_blocks(self):
        """rodata=full on 6.1 (and 7.3): no block at all.  The recorded
        series boot, with its 1G blocks and the region in 2M blocks of its
        own, is not that; one with a block left in the region fails that
        too."""
        spec = crash_spec(rodata="full", shape="forced")
        self.assertEqual(evaluate("t", {"t": spec}, {"t": plain()}),
                         ["crash_in_block_is_zero", "everything_page_mapped"])

        def pages(r):
            val = {"map.pud_bytes": "0", "map.pmd_bytes": "0", "map.crash_in_block": "0"}
            if r.step in ("boot", "load-c"):
                r.value = val.get(r.key, r.value)
            return r
        forced = doctored(plain(), pages)
        self.assertEqual(evaluate("t", {"t": spec}, {"t": forced}), [])
        block = doctored(forced, setval("boot", "map.pmd_bytes", str(2 * MIB)))
        block = doctored(block, setval("boot", "map.crash_in_block", str(2 * MIB)))
        self.assertEqual(evaluate("t", {"t": spec}, {"t": block}),
                         ["crash_in_block_is_zero", "everything_page_mapped"])


class Shape(unittest.TestCase):
    def test_region_edge_in_a_block(self):
        """An edge of the region left inside a block that reaches beyond
        it: the region cannot change without a split."""
        bad = doctored(plain(), setval("boot", "map.crash_edges_in_leaf", "1"))
        self.assertEqual(failed(C.check_apart_shape, bad, plain(), 4096),
                         ["crash_edges_in_leaf_is_zero"])

    def test_region_split_out_of_its_blocks_on_a_kernel_that_keeps_them(self):
        """6.12 without the series keeps the very map of its control; the
        series' map (the region in 2M blocks of its own, its 1G block
        split) differs from it, and a page-mapped region too."""
        blk = plain()
        ctl = doctored(blk, lambda r: lab.Record(r.idx, r.step, r.key, str(
            {"map.pud_bytes": CONTROL_MAP["pud_bytes"], "map.pmd_bytes": CONTROL_MAP["pmd_bytes"],
             "map.pmd_tables": 1}.get(r.key, r.value))) if r.step == "boot" else r)
        self.assertEqual(failed(C.check_blocks_as_control, ctl, ctl), [])
        split = doctored(ctl, setval("boot", "map.pud_bytes", str(5 << 30)))
        split = doctored(split, setval("boot", "map.pmd_bytes",
                                       str(CONTROL_MAP["pmd_bytes"] + GIB)))
        self.assertEqual(failed(C.check_blocks_as_control, split, ctl),
                         ["same_pud_bytes_as_control", "same_pmd_bytes_as_control"])
        self.assertEqual(failed(C.check_blocks_as_control, blk, ctl),
                         ["same_pud_bytes_as_control", "same_pmd_bytes_as_control"])
        pages = doctored(ctl, lambda r: lab.Record(r.idx, r.step, r.key, str(
            {"map.pmd_bytes": CONTROL_MAP["pmd_bytes"] - REGION, "map.crash_in_block": 0,
             "map.pte_bytes": 4 * MIB + REGION, "map.pte_tables": 258}.get(r.key, r.value)))
            if r.step == "boot" else r)
        self.assertEqual(failed(C.check_blocks_as_control, pages, ctl),
                         ["same_pmd_bytes_as_control", "same_pte_bytes_as_control",
                          "same_pte_tables_as_control", "crash_region_in_blocks"])


# ---------------------------------------------------------------------------
# Loads and unloads: every load of a cycle has its own checks.
# ---------------------------------------------------------------------------

def cycle(steps, whole=False):
    """The recorded boot followed by STEPS: each load-c/load-s the recorded
    load's records, each unload a clean one (nothing loaded, nothing
    invalid).  WHOLE: the 7.3 figures, the whole region invalid after a
    load, with a low region of 128 MiB."""
    r = plain()
    out = [x for x in r.records if x.step == "boot"]
    if whole:
        # The low region in the guest's /proc/iomem at boot.
        out.append(lab.Record(0, "boot", "iomem_crash", "0x48000000-0x50000000"))
    load = [x for x in r.records if x.step == "load-c"]
    for i, st in enumerate(steps, 1):
        if st in ("load-c", "load-s"):
            out += [lab.Record(i, st, x.key, x.value) for x in load]
            if whole:
                out += [lab.Record(i, st, "map.invalid_low", str(128 * MIB)),
                        lab.Record(i, st, "map.low_bytes", str(128 * MIB)),
                        lab.Record(i, st, "map.crash_low_region", "0x48000000-0x50000000")]
        else:
            out += [lab.Record(i, st, "rc", "0"), lab.Record(i, st, "crash_loaded", "0")]
            out += [lab.Record(i, st, x.key, "0" if x.key == "map.invalid_crash" else x.value)
                    for x in load if x.key.startswith("map.")]
            if whole:
                out += [lab.Record(i, st, "map.invalid_low", "0"),
                        lab.Record(i, st, "map.low_bytes", str(128 * MIB))]
    out.append(lab.Record(len(steps), "end", "done", "1"))
    res = with_records(r, out)
    if whole:
        res = doctored(res, lambda x: lab.Record(x.idx, x.step, x.key, str(REGION))
                       if x.step.startswith("load") and x.key == "map.invalid_crash" else x)
    return res


TWICE = ["load-c", "unload", "load-c", "unload"]


class Loads(unittest.TestCase):
    def loads(self, res, protects=True, whole=False):
        return failed(C.check_loads, res, IMAGE, False, protects, whole)

    def test_cycles_pass(self):
        self.assertEqual(self.loads(cycle(["load-c", "unload", "load-s", "unload"])), [])
        self.assertEqual(self.loads(cycle(TWICE)), [])
        self.assertEqual(self.loads(cycle(TWICE, True), whole=True), [])

    def test_load_that_fails(self):
        """kexec -p exits 1 (the segments do not fit, say): nothing is
        loaded, nothing protected; the first or the second time."""
        def refused(idx, step):
            def fn(x):
                if x.idx == idx and x.step == step:
                    x.value = {"rc": "1", "crash_loaded": "0",
                               "map.invalid_crash": "0"}.get(x.key, x.value)
                return x
            return fn
        self.assertEqual(self.loads(doctored(cycle(["load-c", "unload"]), refused(1, "load-c"))),
                         ["load-c_rc", "loaded_after_load-c", "segments_invalid_after_load-c"])
        self.assertEqual(self.loads(doctored(cycle(TWICE), refused(3, "load-c"))),
                         ["load-c_2_rc", "loaded_after_load-c_2",
                          "segments_invalid_after_load-c_2"])
        # Exit status 0, but /sys/kernel/kexec_crash_loaded says 0.
        self.assertEqual(self.loads(doctored(cycle(["load-s", "unload"]),
                                             setat(1, "load-s", "crash_loaded", "0"))),
                         ["loaded_after_load-s"])
        self.assertEqual(self.loads(doctored(cycle(TWICE), setat(1, "load-c", "crash_loaded",
                                                                 "0"))),
                         ["loaded_after_load-c_1"])

    def test_second_load_protects_less(self):
        """The second load leaves all but one page valid."""
        self.assertEqual(self.loads(doctored(cycle(TWICE), setat(3, "load-c",
                                                                 "map.invalid_crash", "4096"))),
                         ["segments_invalid_after_load-c_2"])

    def test_second_load_on_an_unprotected_kernel(self):
        """A kernel without the protection: the first load leaves the
        region valid, the second invalidates the Image."""
        res = doctored(cycle(TWICE), setat(1, "load-c", "map.invalid_crash", "0"))
        self.assertEqual(self.loads(res, protects=False), ["segments_left_valid_after_load-c_2"])

    def test_second_load_protects_part_of_the_whole_region(self):
        """7.3: the second load invalidates only its segments."""
        res = doctored(cycle(TWICE, True), setat(3, "load-c", "map.invalid_crash", "9601024"))
        self.assertEqual(self.loads(res, whole=True), ["whole_regions_invalid_after_load-c_2"])

    def test_load_unmaps_part_of_the_region(self):
        """The protection removed a 2 MiB block from the linear map instead
        of making it invalid."""
        self.assertEqual(self.loads(doctored(cycle(["load-c", "unload"]),
                                             setat(1, "load-c", "map.crash_unmapped",
                                                   str(2 * MIB)))),
                         ["crash_unmapped_after_load-c"])
        self.assertEqual(self.loads(doctored(cycle(TWICE), setat(3, "load-c",
                                                                 "map.crash_unmapped",
                                                                 str(2 * MIB)))),
                         ["crash_unmapped_after_load-c_2"])

    def test_second_load_invalidates_a_page_outside(self):
        res = doctored(cycle(TWICE), setat(3, "load-c", "map.invalid_outside", "4096"))
        self.assertEqual(self.loads(res), ["nothing_new_invalid_outside_crash_load-c_2"])

    def test_unload_that_fails(self):
        """kexec -p -u exits 1: still loaded, still protected."""
        def stuck(idx):
            def fn(x):
                if x.idx == idx and x.step == "unload":
                    x.value = {"rc": "1", "crash_loaded": "1",
                               "map.invalid_crash": "9601024"}.get(x.key, x.value)
                return x
            return fn
        self.assertEqual(self.loads(doctored(cycle(["load-c", "unload"]), stuck(2))),
                         ["unload_rc_after_load-c", "not_loaded_after_unload_load-c",
                          "segments_valid_after_unload_load-c"])
        self.assertEqual(self.loads(doctored(cycle(TWICE), stuck(4))),
                         ["unload_rc_after_load-c_2", "not_loaded_after_unload_load-c_2",
                          "segments_valid_after_unload_load-c_2"])

    def test_unload_that_leaves_the_protection(self):
        """Unloaded, but the segments stay invalid (the unprotect was
        skipped): the region is lost to the next load and to the shrink."""
        res = doctored(cycle(["load-s", "unload"]),
                       setat(2, "unload", "map.invalid_crash", "9601024"))
        self.assertEqual(self.loads(res), ["segments_valid_after_unload_load-s"])
        res = doctored(cycle(TWICE), setat(4, "unload", "map.invalid_crash", "9601024"))
        self.assertEqual(self.loads(res), ["segments_valid_after_unload_load-c_2"])

    def test_unload_that_says_loaded(self):
        res = doctored(cycle(["load-c", "unload"]), setat(2, "unload", "crash_loaded", "1"))
        self.assertEqual(self.loads(res), ["not_loaded_after_unload_load-c"])
        res = doctored(cycle(TWICE), setat(2, "unload", "crash_loaded", "1"))
        self.assertEqual(self.loads(res), ["not_loaded_after_unload_load-c_1"])

    def test_second_unload_leaves_the_low_region_invalid(self):
        res = doctored(cycle(TWICE, True), setat(4, "unload", "map.invalid_low", "4096"))
        self.assertEqual(self.loads(res, whole=True), ["low_region_valid_after_unload_load-c_2"])


# ---------------------------------------------------------------------------
# The capture, the stray write's console, the shrink.
# ---------------------------------------------------------------------------

class Capture(unittest.TestCase):
    def capture(self, res, refuses=None):
        return failed(C.check_capture, res, refuses)

    def test_recorded_passes(self):
        self.assertEqual(self.capture(plain()), [])

    def test_crash_step_never_ran(self):
        """No crash step records (the sysrq write failed): the capture
        that follows is not the one asked for, and no marker to find."""
        bad = doctored(plain(), drop(lambda r: r.step == "crash"))
        self.assertEqual(self.capture(bad), ["crash_triggered", "vmcore_dmesg_has_marker",
                                             "makedumpfile_dump_dmesg_has_marker"])

    def test_capture_kernel_silent(self):
        """The capture kernel booted (end record) but reported nothing."""
        bad = doctored(plain(), drop(lambda r: r.step == "capture"))
        self.assertEqual(self.capture(bad), [
            "capture_kernel_reported", "vmcore_dmesg_rc", "vmcore_dmesg_has_marker",
            "makedumpfile_dump_dmesg_has_marker", "makedumpfile_rc", "dump_written",
            "vmcoreinfo_osrelease_is_first_kernel"])
        self.assertEqual(self.capture(bad, "PAGE SIZE 0x1000 and VA Bits 52 not supported"), [
            "capture_kernel_reported", "vmcore_dmesg_rc", "vmcore_dmesg_has_marker",
            "makedumpfile_stops_only_for_the_known_reason"])

    def test_one_tool_fails(self):
        for key, value, check in (
                ("vmcore_dmesg_rc", "1", "vmcore_dmesg_rc"),
                ("dump_dmesg_marker_found", "", "makedumpfile_dump_dmesg_has_marker"),
                ("makedumpfile_rc", "1", "makedumpfile_rc"),
                ("dump_bytes", "0", "dump_written")):
            self.assertEqual(self.capture(doctored(plain(), setval("capture", key, value))),
                             [check], key)

    def test_known_refusal_with_vmcore_dmesg_failing(self):
        known = "PAGE SIZE 0x1000 and VA Bits 52 not supported"

        def refused(x):
            if x.step == "capture" and x.key == "makedumpfile_rc":
                return [lab.Record(x.idx, x.step, x.key, "1"),
                        lab.Record(x.idx, x.step, "makedumpfile_log", known)]
            return x
        res = doctored(plain(), refused)
        self.assertEqual(self.capture(res, known), [])
        self.assertEqual(self.capture(doctored(res, setval("capture", "vmcore_dmesg_rc", "2")),
                                      known), ["vmcore_dmesg_rc"])


class StrayConsole(unittest.TestCase):
    def test_console_log_missing(self):
        """The run directory's console log is gone: the checks that read it
        fail, and the first says why."""
        r = plain()
        out = []
        for x in r.records:
            if x.step in ("capture", "end"):
                continue
            out.append(lab.Record(3, x.step, x.key, x.value) if x.step == "crash" else x)
            if x.step == "load-c" and x.key == "crash_size":
                out += [lab.Record(2, "stray", "target", "0xe0000000-0x100000000"),
                        lab.Record(2, "stray", "rc", "0"), lab.Record(2, "stray", "oops", "0")]
        with tempfile.TemporaryDirectory() as d:
            res = lab.Result("t", lab.NO_RESULT, out, os.path.join(d, "console.log"), 0.0)
            self.assertEqual(failed(C.check_stray, res, False, plain()),
                             ["console_readable", "capture_kernel_entered",
                              "capture_kernel_never_booted"])


def shrunk(**change):
    """The recorded boot followed by a shrink of 64M (step 1) that went as
    it should; CHANGE: {record key: value} of the shrink step."""
    r = plain()
    out = [x for x in r.records if x.step == "boot"]
    recs = {"rc": "0", "memfree_delta_kb": "65536", "memtotal_delta_kb": "65536",
            "iomem_crash": "0xe0000000-0xfc000000", "crash_size": str(448 * MIB)}
    recs.update({x.key: x.value for x in r.records if x.step == "boot"
                 and x.key.startswith("map.")})
    recs["map.crash_region"] = "0xe0000000-0xfc000000"
    recs["map.crash_bytes"] = str(448 * MIB)
    recs.update(change)
    out += [lab.Record(1, "shrink", k, v) for k, v in recs.items()]
    out.append(lab.Record(1, "end", "done", "1"))
    return with_records(r, out)


class Shrink(unittest.TestCase):
    D = 64 * MIB

    def shrink(self, res):
        return failed(C.check_shrink, res, self.D)

    def test_passes(self):
        self.assertEqual(self.shrink(shrunk()), [])

    def test_step_never_ran(self):
        res = doctored(shrunk(), drop(lambda r: r.step == "shrink"))
        self.assertEqual(self.shrink(res), ["shrink_ran"])

    def test_write_refused(self):
        """The write to kexec_crash_size fails (EBUSY: a capture kernel is
        loaded): nothing is given back."""
        res = shrunk(rc="1", memfree_delta_kb="0", memtotal_delta_kb="0",
                     iomem_crash="0xe0000000-0x100000000", crash_size=str(REGION))
        self.assertEqual(self.shrink(res), ["shrink_rc", "iomem_crash_shrunk_by_delta",
                                            "kexec_crash_size_after_shrink",
                                            "memtotal_grew_by_delta", "memfree_grew_by_delta"])

    def test_iomem_not_updated(self):
        """kexec_crash_size and MemTotal moved, /proc/iomem did not."""
        self.assertEqual(self.shrink(shrunk(iomem_crash="0xe0000000-0x100000000")),
                         ["iomem_crash_shrunk_by_delta"])

    def test_crash_size_stale(self):
        self.assertEqual(self.shrink(shrunk(crash_size=str(REGION))),
                         ["kexec_crash_size_after_shrink"])

    def test_map_after_the_shrink(self):
        """The remaining region remapped badly after the shrink: its last
        2 MiB in a block, or out of the linear map, or with the memory
        type MEM/NORMAL in a NORMAL-TAGGED map."""
        for change, check in (
                ({"map.crash_edges_in_leaf": "1"}, "crash_edges_in_leaf_is_zero_after_shrink"),
                ({"map.crash_unmapped": str(2 * MIB)}, "crash_unmapped_is_zero_after_shrink"),
                ({"map.crash_memtype_other": str(448 * MIB)},
                 "crash_memtype_as_around_after_shrink"),
                ({"map.memtype_above": "MEM/NORMAL"}, "memtype_same_on_both_sides_after_shrink")):
            self.assertEqual(self.shrink(shrunk(**change)), [check], change)


# ---------------------------------------------------------------------------
# Kselftest runs: the second run of a scenario has checks of its own.
# ---------------------------------------------------------------------------

EXPECT = {"crash_regions_mapped_apart": "ok", "crash_memory_type_as_around": "ok",
          "pte_outside_crash_within_limit": "ok", "protect_after_load": "ok",
          "unprotect_after_unload": "ok", "shrink_returns_memory": "skip"}


def two_selftests(second, rc="0"):
    recs = [lab.Record(0, "boot", "release", "6.1.192"), lab.Record(1, "selftest", "rc", "0")]
    recs += [lab.Record(1, "selftest", "tap", t) for t in TAP_OK]
    recs += [lab.Record(3, "selftest", "rc", rc)]
    recs += [lab.Record(3, "selftest", "tap", t) for t in second]
    return lab.Result("t", lab.DONE, recs, "", 0.0)


class SecondSelftest(unittest.TestCase):
    def test_both_pass(self):
        self.assertEqual(failed(C.check_selftest, two_selftests(TAP_OK), EXPECT), [])

    def test_second_run_crashes_midway(self):
        """The second run dies in protect_after_load (exit 139)."""
        self.assertEqual(failed(C.check_selftest, two_selftests(TAP_OK[:5], "139"), EXPECT),
                         ["selftest_2_plan_matches_results", "selftest_2_exit_status",
                          "selftest_2_crash_memory_type_as_around_ok",
                          "selftest_2_pte_outside_crash_within_limit_ok",
                          "selftest_2_shrink_returns_memory_skip"])

    def test_second_run_skips_for_another_reason(self):
        tap = [t.replace("set KDUMP_SHRINK=1 to run", "a crash kernel is loaded")
               for t in TAP_OK]
        self.assertEqual(failed(C.check_selftest, two_selftests(tap), EXPECT,
                                {"shrink_returns_memory": "set KDUMP_SHRINK=1 to run"}),
                         ["selftest_2_shrink_returns_memory_skips_for_its_reason"])

    def test_second_run_has_a_new_test(self):
        tap = TAP_OK[:1] + ["1..7"] + TAP_OK[2:8] + ["ok 7 something_new"]
        self.assertEqual(failed(C.check_selftest, two_selftests(tap), EXPECT),
                         ["selftest_2_no_unexpected_tests"])


# ---------------------------------------------------------------------------
# What crash made of the dumps: the ELF dump's checks, the transfer, the
# damaged copies.
# ---------------------------------------------------------------------------

def crash_text(which):
    with gzip.open(os.path.join(DATA, "crash", "crash-fulldump-1G-%s.out.gz" % which), "rt") as f:
        return f.read()


KDUMP_TEXT = crash_text("kdump")
ELF_TEXT = crash_text("elf")


def analysis(res, name, edit=None, **kw):
    """The Analysis of the recorded dump NAME ("kdump", "elf"), what crash
    printed passed through EDIT."""
    info = vmcore.vmcoreinfo(res)
    text = KDUMP_TEXT if name == "kdump" else ELF_TEXT
    a = vmcore.Analysis(dump="dump." + name, outputs=vmcore.split_outputs(edit(text) if edit
                                                                           else text),
                        rc=0, vtop_points=vmcore.vtop_points(res, info),
                        pattern=vmcore.pattern_pages(res, info) if name == "elf" else [],
                        transfer=[("%s_transferred_intact" % name, True, "")])
    for k, v in kw.items():
        setattr(a, k, v)
    return a


def analysed(res=None, kdump=None, elf=None, blocks=True, protects=True, invalid_elsewhere=False,
             extra=None):
    """check_analysis of the recorded fulldump run, both dumps, crash's
    output for each passed through the edit KDUMP / ELF."""
    res = res or recorded(FULL)
    res.analysis = {"kdump": analysis(res, "kdump", kdump), "elf": analysis(res, "elf", elf)}
    res.analysis.update(extra or {})
    return failed(C.check_analysis, res, 4096, 1 << 30, invalid_elsewhere, blocks, protects)


def invalidate(text, pred):
    """TEXT with the walk of every sampled PA for which PRED holds ending
    on an invalid entry that still names its page (as debug_pagealloc
    leaves free pages): the last entry's valid bit cleared, no PAGE."""
    def fn(m):
        block = m.group(0)
        pa = int(m.group(2), 16)
        if not pred(pa) or "PAGE:" not in block:
            return block
        lines = block.splitlines(keepends=True)
        out = []
        for line in lines:
            if line.strip().startswith("PAGE:"):
                break
            out.append(line)
        last = max(i for i, line in enumerate(out) if "=>" in line)
        ptr, val = re.match(r"^(.*=> )([0-9a-f]+)\s*$", out[last]).groups()
        out[last] = "%s%x\n" % (ptr, int(val, 16) & ~1)
        return "".join(out) + "\n     PTE        vtop: cannot determine swap location\n"
    return re.sub(r"(?ms)^(===lab:vtop\d+===)\n\S+\s+\S+\s*\n[0-9a-f]{16}\s+([0-9a-f]+)\s*\n"
                  r".*?(?=^===lab:)", fn, text)


def revalidate(text):
    """TEXT with every walk that ends on an invalid entry (the loaded
    capture kernel's pages) ending on that entry valid, at its page or
    block: the dump of a kernel that does not protect them.  An invalid
    PTE ends crash's walk with "cannot determine swap location"; a PMD
    block the series made invalid (present-invalid, bit 59 set) is read
    as a table, which ends it with a seek error (a read error in the ELF
    dump)."""
    text = re.sub(r"(?m)^(   PTE: \S+ => )([0-9a-f]+)\n\n     PTE        vtop: cannot "
                  r"determine swap location\n",
                  lambda m: "%s%x\n  PAGE: %x\n" % (m.group(1), int(m.group(2), 16) | 1,
                                                    int(m.group(2), 16) & 0xfffffffff000), text)
    return re.sub(r"(?m)^(   PMD: \S+ => )([0-9a-f]+)\nvtop: (?:seek|read) error: kernel virtual "
                  r"address: \S+  type: \"page table\"\n",
                  lambda m: "%s%x\n  PAGE: %x  (2MB)\n" % (
                      m.group(1), (int(m.group(2), 16) & ~(1 << 59)) | 1,
                      int(m.group(2), 16) & 0xffffffe00000), text)


def pages(text):
    """TEXT with every sampled point's walk ending on a page, not a 2 MiB
    block (the points are 2 MiB aligned: the same address); the pattern's
    walks (after the samples) as they are."""
    i = text.find("===lab:rdp0===")
    i = len(text) if i < 0 else i
    return re.sub(r"(?m)^(  PAGE: [0-9a-f]+)  \(2MB\)$", r"\1", text[:i]) + text[i:]


CRASH_1G = (0x6ee00000, 0x7ee00000)


class ElfDump(unittest.TestCase):
    """The checks of the ELF dump (suffix _elf) fail on it alone."""

    def test_recorded_passes(self):
        self.assertEqual(analysed(), [])

    def test_crash_stopped_early(self):
        self.assertEqual(analysed(elf=lambda t: t[:t.index("===lab:kmem===")]), ["crash_ran_elf"])

    def test_other_release(self):
        self.assertEqual(analysed(elf=lambda t: t.replace("RELEASE: 6.1.192", "RELEASE: 6.1.191")),
                         ["crash_sys_release_is_first_kernel_elf"])

    def test_other_panic(self):
        self.assertEqual(analysed(elf=lambda t: t.replace(
            "sysrq triggered crash", "Oops: Fatal exception")), ["crash_sys_panic_is_sysrq_elf"])

    def test_panic_not_the_stray_write(self):
        """With a stray step the PANIC must be its oops, at an address of
        the region; an oops elsewhere (in the kdump dump too) is not."""
        res = recorded(FULL)
        res.records.append(lab.Record(9, "stray", "oops_line", "Unable to handle kernel paging "
                                      "request at virtual address ffff00002ee00000"))
        oops = "Unable to handle kernel paging request at virtual address %016x"
        va = vmcore.linear_va(CRASH_1G[0], vmcore.vmcoreinfo(res))
        good = oops % va
        self.assertEqual(analysed(res, kdump=lambda t: t.replace("sysrq triggered crash", good),
                                  elf=lambda t: t.replace("sysrq triggered crash", good)), [])
        outside = oops % vmcore.linear_va(0x40200000, vmcore.vmcoreinfo(res))
        self.assertEqual(analysed(res, kdump=lambda t: t.replace("sysrq triggered crash", good),
                                  elf=lambda t: t.replace("sysrq triggered crash", outside)),
                         ["crash_log_shows_stray_write_oops_elf"])

    def test_marker_not_in_log(self):
        """The ELF dump's log buffer ends before the marker line."""
        self.assertEqual(analysed(elf=lambda t: re.sub(r".*lab marker.*\n", "", t)),
                         ["crash_log_has_marker_elf"])

    def test_bt_without_the_sysrq_frame(self):
        self.assertEqual(analysed(elf=lambda t: re.sub(r".*write_sysrq_trigger.*\n", "", t)),
                         ["crash_bt_shows_sysrq_crash_elf"])

    def test_kmem_total_off_by_one_page(self):
        self.assertEqual(analysed(elf=lambda t: t.replace("TOTAL MEM   190550",
                                                          "TOTAL MEM   190551")),
                         ["crash_kmem_total_is_memtotal_elf"])

    def test_point_without_answer(self):
        self.assertEqual(analysed(elf=lambda t: re.sub(
            r"(?s)===lab:vtop7===.*?(?====lab:)", "===lab:vtop7===\n", t)),
            ["crash_vtop_sampled_all_ram_elf"])

    def test_walk_to_another_page(self):
        self.assertEqual(analysed(elf=lambda t: re.sub(r"(?m)^  PAGE: 40200000$",
                                                       "  PAGE: 40201000", t, count=1)),
                         ["crash_vtop_linear_map_consistent_elf"])

    def test_invalid_outside(self):
        """One page outside the region invalid in the ELF dump only (a
        protection that landed 2 MiB off, say)."""
        self.assertEqual(analysed(elf=lambda t: invalidate(t, lambda pa: pa == 0x40200000)),
                         ["crash_vtop_valid_outside_crash_regions_elf"])

    def test_capture_kernel_valid_in_the_elf_dump(self):
        """The ELF dump shows the loaded capture kernel's pages valid: the
        protection is not in that dump's page tables."""
        self.assertEqual(analysed(elf=revalidate), ["crash_vtop_capture_kernel_protected_elf"])

    def test_unprotected_kernel(self):
        """A kernel without the protection must show no invalid entry in
        the region, in either dump."""
        self.assertEqual(analysed(kdump=revalidate, elf=revalidate, protects=False), [])
        self.assertEqual(analysed(kdump=revalidate, protects=False),
                         ["crash_vtop_capture_kernel_unprotected_elf"])

    def test_no_kernel_alias_point_resolves(self):
        """The kernel image's linear alias walks nowhere in the ELF dump."""
        kernel = [(0x40210000, 0x405f0000), (0x40680000, 0x40780000)]
        self.assertEqual(analysed(elf=lambda t: invalidate(
            t, lambda pa: any(s <= pa < e for s, e in kernel)), invalid_elsewhere=True),
            ["crash_vtop_kernel_alias_consistent_elf"])

    def test_blocks_expected_but_all_pages(self):
        """The series keeps blocks outside the region; a dump whose walks
        end on pages only (as 6.1 without it maps) fails, in either dump."""
        self.assertEqual(analysed(kdump=pages), ["crash_vtop_sees_blocks"])
        self.assertEqual(analysed(elf=pages), ["crash_vtop_sees_blocks_elf"])

    def test_blocks_where_none_may_be(self):
        self.assertEqual(analysed(kdump=pages, blocks=False), ["crash_vtop_sees_no_blocks_elf"])

    def test_rebuilt_slot_left_invalid(self):
        """With debug_pagealloc (invalid pages outside the region allowed)
        the slot the series rebuilt around the late region comes back
        all invalid: only the slot check sees it.  In this 1G guest the
        slot is all of RAM, the kernel image's alias included."""
        outside = lambda pa: not CRASH_1G[0] <= pa < CRASH_1G[1]  # noqa: E731
        self.assertEqual(analysed(kdump=lambda t: invalidate(t, outside), invalid_elsewhere=True,
                                  blocks=None),
                         ["crash_vtop_kernel_alias_consistent",
                          "crash_vtop_rebuilt_slot_consistent"])
        self.assertEqual(analysed(elf=lambda t: invalidate(t, outside), invalid_elsewhere=True,
                                  blocks=None),
                         ["crash_vtop_kernel_alias_consistent_elf",
                          "crash_vtop_rebuilt_slot_consistent_elf"])

    def test_pattern_read_wrong_through_the_linear_map(self):
        def edit(t):
            i = t.index("===lab:rdv0===")
            return t[:i] + t[i:].replace("4c41425009cc443a", "4c41425009cc443b", 1)
        self.assertEqual(analysed(elf=edit), ["crash_rd_pattern_by_linear_address_elf"])


class Pattern(unittest.TestCase):
    def test_pattern_writer_failed(self):
        res = doctored(recorded(FULL), setval("pattern", "rc", "1"))
        self.assertEqual(analysed(res), ["pattern_written"])

    def test_kernel_data_alias_left_valid(self):
        """A kernel that unmaps the linear alias of its data and bss (7.3:
        variants.KERNELS data_alias_invalid) shows invalid points there;
        the recorded 6.1 dumps, where it is mapped, fail that check."""
        with mock.patch.dict(variants.LINE, data_alias_invalid=True):
            self.assertEqual(sorted(analysed()),
                             ["crash_vtop_kernel_data_alias_invalid",
                              "crash_vtop_kernel_data_alias_invalid_elf"])

    def test_region_not_logged_as_mapped_apart(self):
        """The series kept its blocks, but the log names no region mapped
        apart: the slot checks of both dumps cannot run, and that fails."""
        res = doctored(recorded(FULL), drop(lambda r: r.key == "klog" and
                                             "mapped apart" in r.value))
        self.assertEqual(analysed(res), ["crash_vtop_split_slots_logged_elf",
                                         "crash_vtop_split_slots_logged"])

    def test_pattern_outside_the_rebuilt_slot(self):
        """The log names a late region in another 1G slot than the one
        the pattern was written in."""
        res = doctored(recorded(FULL), lambda r: lab.Record(
            r.idx, r.step, r.key, r.value.replace("0x000000006ee00000-0x000000007edfffff",
                                                  "0x00000000c6e00000-0x00000000d6dfffff"))
            if r.key == "klog" else r)
        self.assertEqual(analysed(res), ["pattern_pages_in_rebuilt_slot"])


class Transfer(unittest.TestCase):
    """vmcore.extract(): the dumps copied off the guest's disk, each
    checked against the SHA-256 the guest computed; its checks reach TAP
    through check_analysis."""

    KDUMP = b"KDUMP   " + bytes(range(256)) * 16
    ELF = b"\x7fELF\x02" + bytes(range(255, -1, -1)) * 16

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.off = 8192

    def disk(self, kdump=None, elf=None):
        with open(os.path.join(self.tmp.name, lab.DISK_IMAGE), "wb") as f:
            f.write(kdump if kdump is not None else self.KDUMP)
            f.seek(self.off)
            f.write(elf if elf is not None else self.ELF)

    def res(self, **change):
        """The recorded fulldump run with the capture's records of the
        two dumps on this test's disk image."""
        recs = {"dump_bytes": str(len(self.KDUMP)),
                "dump_sha256": hashlib.sha256(self.KDUMP).hexdigest(), "dump_export_rc": "0",
                "vmcore_offset": str(self.off), "vmcore": str(len(self.ELF)),
                "vmcore_sha256": hashlib.sha256(self.ELF).hexdigest(), "vmcore_export_rc": "0"}
        recs.update(change)
        return doctored(recorded(FULL), lambda r: lab.Record(r.idx, r.step, r.key, recs[r.key])
                        if r.step == "capture" and r.key in recs else r)

    def analysed(self, res):
        """check_analysis of RES as vmcore._analyse assembles it: a dump
        that did not come off the disk intact is not analysed; the others
        get the recorded crash output."""
        paths, transfer = vmcore.extract(res, self.tmp.name, True)
        an = {}
        for name in ("kdump", "elf"):
            if name in paths:
                an[name] = analysis(res, name)
            else:
                an[name] = vmcore.Analysis(error="no %s dump to analyse" % name)
            an[name].transfer = [t for t in transfer if t[0].startswith(name)]
        res.analysis = an
        return failed(C.check_analysis, res, 4096, 1 << 30, False, True)

    def test_intact(self):
        self.disk()
        self.assertEqual(self.analysed(self.res()), [])

    def test_elf_dump_changed_on_the_way(self):
        """One byte of the ELF dump differs on the host."""
        self.disk(elf=self.ELF[:100] + b"\0" + self.ELF[101:])
        self.assertEqual(self.analysed(self.res()), ["elf_transferred_intact", "crash_ran_elf"])

    def test_kdump_dump_cut_short(self):
        """The disk image ends inside the -d 31 dump (the ELF one not
        written)."""
        with open(os.path.join(self.tmp.name, lab.DISK_IMAGE), "wb") as f:
            f.write(self.KDUMP[:1000])
        self.assertEqual(self.analysed(self.res()),
                         ["elf_transferred_intact", "crash_ran_elf", "kdump_transferred_intact",
                          "crash_ran"])

    def test_guest_export_failed(self):
        """The guest's dd of a dump to the disk failed."""
        self.disk()
        self.assertEqual(self.analysed(self.res(dump_export_rc="1")),
                         ["kdump_exported", "crash_ran"])
        self.assertEqual(self.analysed(self.res(vmcore_export_rc="1")),
                         ["elf_exported", "crash_ran_elf"])


class DamagedDumps(unittest.TestCase):
    """vmcore.doctor()'s copies: the PTE flipped in the ELF dump must make
    the linear-map walk fail, as the cut -d 31 dump must make crash fail."""

    def flipped(self, edit):
        """The damaged ELF dump: the PTE of linear-map address 0x40200000
        (PTE-mapped, outside the region) points 2 MiB further; crash's
        walk of it as EDIT has it."""
        res = recorded(FULL)
        info = vmcore.vmcoreinfo(res)
        a = analysis(res, "elf", edit, doctored="the PTE mapping %#x changed"
                     % vmcore.linear_va(0x40200000, info), pattern=[])
        a.vtop_points = [(0x40200000, vmcore.linear_va(0x40200000, info))]
        return {"elf-pte-flipped": a}

    def test_flip_seen(self):
        def moved(t):
            return re.sub(r"(?m)^  PAGE: 40200000$", "  PAGE: 40400000", t, count=1)
        self.assertEqual(analysed(extra=self.flipped(moved)), [])

    def test_flip_unseen(self):
        """crash read the PTE as it was before the flip (the damage did not
        reach the dump it opened): the damaged-dump check must fail."""
        self.assertEqual(analysed(extra=self.flipped(None)),
                         ["damaged_dump_fails_checks_elf-pte-flipped"])


if __name__ == "__main__":
    unittest.main()
