"""Unit tests of the checks that only the mainline line (KERNEL=7.3) uses:
the crash regions mapped apart, the whole regions protected, and the
kselftest outcomes of a kernel that protects nothing.  run_tests.py runs
this module with KERNEL=7.3.  Each check is shown failing on a realistic
bad value: the figures of the unpatched 7.3, whose regions lie inside its
blocks."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import checks as C  # noqa: E402
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import variants  # noqa: E402
from test_lab import doctored, failed  # noqa: E402

MIB = 1 << 20

# The boot figures linmap reported for 7.3, rodata=noalias, 8G guest,
# crashkernel=512M (region 0xdfe00000-0xffe00000): the control, the
# series (region mapped apart: its 1G block split into a PMD table) and
# the unpatched kernel (region inside the blocks, its edges in them).
CONTROL = {"pud_bytes": 6 << 30, "pmd_bytes": 2046 * MIB, "pte_bytes": 2 * MIB,
           "pte_outside_crash": 2 * MIB, "pte_tables": 1, "pmd_tables": 1,
           "pte_spans_avoidable": 0, "crash_edges_in_leaf": 0, "crash_unmapped": 0,
           "crash_memtype_other": 0, "memtype_below": "-", "memtype_above": "-",
           "crash_bytes": 0, "low_bytes": 0}
SERIES = dict(CONTROL, pud_bytes=5 << 30, pmd_bytes=3070 * MIB, pmd_tables=2,
              crash_bytes=512 * MIB, memtype_below="MEM/NORMAL", memtype_above="MEM/NORMAL")
BASE = dict(SERIES, pud_bytes=CONTROL["pud_bytes"], pmd_bytes=CONTROL["pmd_bytes"],
            pmd_tables=1, crash_edges_in_leaf=2)
REGION = "0xdfe00000-0xffe00000"


def result(boot, steps=()):
    """A Result whose boot step reported the figures BOOT, followed by
    STEPS: (step, {figure: value}, {record: value})."""
    recs = [lab.Record(0, "boot", "map." + k, str(v)) for k, v in boot.items()]
    if boot.get("crash_bytes"):
        recs.append(lab.Record(0, "boot", "map.crash_region", REGION))
    for i, (step, figs, other) in enumerate(steps, 1):
        recs += [lab.Record(i, step, "map." + k, str(v)) for k, v in figs.items()]
        recs += [lab.Record(i, step, k, v) for k, v in other.items()]
    recs.append(lab.Record(len(steps) + 1, "end", "done", "1"))
    return lab.Result("t", lab.DONE, recs, "console.log", 0.0)


class ApartShape(unittest.TestCase):
    def test_series_passes(self):
        self.assertEqual(failed(C.check_apart_shape, result(SERIES), result(CONTROL), 4096), [])

    def test_unpatched_fails_on_its_edges(self):
        """The unpatched kernel keeps the region inside its blocks: both
        edges fall inside a leaf."""
        self.assertEqual(failed(C.check_apart_shape, result(BASE), result(CONTROL), 4096),
                         ["crash_edges_in_leaf_is_zero"])

    def test_page_mapped_region_costs_tables(self):
        """Page-mapping the 512M region (the 6.x design) costs 256 PTE
        tables: more than two table pages per region."""
        pages = dict(SERIES, pte_tables=257)
        self.assertEqual(failed(C.check_apart_shape, result(pages), result(CONTROL), 4096),
                         ["table_pages_bounded"])

    def test_pages_outside_the_region(self):
        worse = dict(SERIES, pte_outside_crash=4 * MIB)
        self.assertEqual(failed(C.check_apart_shape, result(worse), result(CONTROL), 4096),
                         ["pte_outside_crash_within_block_hull"])

    def test_missing_figures_fail(self):
        bare = {k: v for k, v in SERIES.items() if k not in ("pmd_tables", "crash_edges_in_leaf")}
        self.assertEqual(failed(C.check_apart_shape, result(bare), result(CONTROL), 4096),
                         ["crash_edges_in_leaf_is_zero", "table_pages_bounded"])

    def test_shrink_keeps_the_region_apart(self):
        sh = {"crash_edges_in_leaf": 1, "crash_unmapped": 0, "crash_memtype_other": 0,
              "memtype_below": "-", "memtype_above": "-"}
        c = C.Checker("t", "series")
        C.check_regions_apart(c, sh, "_after_shrink")
        self.assertEqual(c.failed(), ["crash_edges_in_leaf_is_zero_after_shrink"])


class WholeRegions(unittest.TestCase):
    """check_loads(whole=True): after a load every byte of both regions is
    invalid; after the unload none."""

    def loads(self, invalid, invalid_low=0, low=0, unload_low=0, iomem_low=None):
        """IOMEM_LOW: the low region's size in its iomem line at the load
        (default LOW, what linmap reported)."""
        iomem_low = low if iomem_low is None else iomem_low
        before = {"invalid_outside": 0}
        after = {"invalid_crash": invalid, "crash_bytes": 512 * MIB, "invalid_low": invalid_low,
                 "low_bytes": low, "invalid_outside": 0, "crash_unmapped": 0}
        if low is None:
            del after["invalid_low"], after["low_bytes"]
        rec = {"rc": "0", "crash_loaded": "1"}
        gone = {"invalid_crash": 0, "invalid_low": unload_low, "invalid_outside": 0}
        res = result(dict(CONTROL, **before), [
            ("load-c", after, rec),
            ("unload", gone, {"rc": "0", "crash_loaded": "0"})])
        # The guest's /proc/iomem at boot: the main region, and the low one.
        res.records[:0] = [lab.Record(0, "boot", "iomem_crash", REGION)] + (
            [lab.Record(0, "boot", "iomem_crash", "0x48000000-0x%x" % (0x48000000 + iomem_low))]
            if iomem_low else [])
        return res

    def test_main_region_checked_against_iomem(self):
        """All of what linmap calls the main region invalid, but linmap's
        region is not the one /proc/iomem had before the load (256M of
        512M), or there is no iomem record at all."""
        half = self.loads(256 * MIB)
        half = doctored(half, lambda x: lab.Record(x.idx, x.step, x.key, str(256 * MIB))
                        if x.key == "map.crash_bytes" and x.step == "load-c" else x)
        self.assertEqual(failed(C.check_loads, half, 8 * MIB, protects=True, whole=True),
                         ["whole_regions_invalid_after_load-c"])
        none = doctored(self.loads(512 * MIB), lambda x: None if x.key == "iomem_crash" else x)
        self.assertEqual(failed(C.check_loads, none, 8 * MIB, protects=True, whole=True),
                         ["whole_regions_invalid_after_load-c"])

    def test_low_region_figures_checked_against_iomem(self):
        """A low region in iomem that linmap counts as 0 bytes, or no low
        figures at all, cannot pass as "all of it invalid"."""
        for bad in (self.loads(512 * MIB, 0, 0, iomem_low=128 * MIB),
                    self.loads(512 * MIB, None, None, iomem_low=128 * MIB)):
            self.assertEqual(failed(C.check_loads, bad, 8 * MIB, protects=True, whole=True),
                             ["whole_regions_invalid_after_load-c"])
        self.assertEqual(failed(C.check_loads, self.loads(512 * MIB, 128 * MIB, 128 * MIB),
                                8 * MIB, protects=True, whole=True), [])

    def test_whole_region_passes(self):
        self.assertEqual(failed(C.check_loads, self.loads(512 * MIB), 8 * MIB, protects=True,
                                whole=True), [])

    def test_segments_only_fail(self):
        """Only the loaded segments invalid (the pre-6.4 protection) is not
        the whole region."""
        self.assertEqual(failed(C.check_loads, self.loads(44 * MIB), 8 * MIB, protects=True,
                                whole=True), ["whole_regions_invalid_after_load-c"])

    def test_low_region_left_valid_fails(self):
        self.assertEqual(failed(C.check_loads, self.loads(512 * MIB, 0, 128 * MIB), 8 * MIB,
                                protects=True, whole=True),
                         ["whole_regions_invalid_after_load-c"])

    def test_low_region_left_invalid_after_unload_fails(self):
        self.assertEqual(failed(C.check_loads,
                                self.loads(512 * MIB, 128 * MIB, 128 * MIB, 4096),
                                8 * MIB, protects=True, whole=True),
                         ["low_region_valid_after_unload_load-c"])


class Table(unittest.TestCase):
    def test_line(self):
        self.assertEqual(variants.KERNEL, "7.3")
        self.assertEqual(variants.LINE["rodata"], "noalias")
        self.assertEqual(SC.ST_MAPPED, "crash_regions_mapped_apart")

    def test_default_rodata_keeps_blocks(self):
        """rodata=on means full on 7.3: the block scenarios must say noalias."""
        self.assertIn("rodata=noalias", SC.SCENARIOS["plain-512M"]["cmdline"])
        self.assertIn("rodata=on", SC.SCENARIOS["rodata-on"]["cmdline"])

    def test_unpatched_kernel_skips_what_it_lacks(self):
        """The unpatched 7.3 protects nothing: its kselftest must skip the
        protection and mapping tests, with either rodata=."""
        for name in ("base-plain-512M", "base-rodata-on"):
            exp = SC.selftest_expect(SC.SCENARIOS[name])
            self.assertEqual([exp[t] for t in (SC.ST_LOAD, SC.ST_UNLOAD, SC.ST_MAPPED)],
                             ["skip"] * 3, name)
        exp = SC.selftest_expect(SC.SCENARIOS["plain-512M"])
        self.assertEqual([exp[t] for t in (SC.ST_LOAD, SC.ST_UNLOAD, SC.ST_MAPPED)],
                         ["ok"] * 3)

    def test_every_layout_and_path(self):
        """Shape against a control, both load paths, the stray write on
        both paths for base and series, the swap shrink, both rodata=
        meanings, UEFI and the DMA-limited tree, crashes of each layout."""
        s = SC.SCENARIOS
        for name in ("plain-512M", "high-1G", "fixed-256M@0x60000000", "plain-512M-uefi",
                     "plain-256M-dma31", "base-plain-512M"):
            self.assertEqual(s[name]["shape"], "shape", name)
            self.assertIn("load-c", s[name]["steps"], name)
        for name in ("stray-write", "stray-write-s", "base-stray-write", "base-stray-write-s"):
            self.assertIn("stray", s[name]["steps"], name)
        self.assertTrue(s["base-stray-write"]["lost"])
        self.assertIn("panic_on_warn=1", s["shrink-swap"]["cmdline"])
        for form in ("crashkernel=512M", ",high crashkernel=128M,low", "@0x60000000"):
            self.assertTrue([n for n, x in s.items() if "crash" in x["steps"]
                             and form in x["cmdline"]], form)


if __name__ == "__main__":
    unittest.main()
