"""Unit tests of the host side: the result-channel parser, the QEMU command
lines and every check, on a recorded result file and on doctored copies of
it.  Each check is shown failing on a bad sample.  They run in
milliseconds, without QEMU."""

import os
import re
import stat
import subprocess
import sys
import tempfile
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lab"))
import checks as C  # noqa: E402
import lab  # noqa: E402
import scenarios as SC  # noqa: E402
import variants  # noqa: E402

DATA = os.path.join(HERE, "data")
TOP = os.path.dirname(HERE)
IMAGE = 8 << 20     # an Image size for the protection checks (the recorded one is 9 MiB)


def recorded(name):
    garbage = []
    with open(os.path.join(DATA, name)) as f:
        recs = lab.parse_records(f.read(), garbage)
    return lab.Result(name, lab.outcome_of(recs), recs, "console.log", 0.0, garbage=garbage)


def doctored(res, fn):
    """A copy of RES whose records went through FN(record) -> record, a list
    of records, or None (dropped)."""
    out = []
    for r in res.records:
        x = fn(lab.Record(r.idx, r.step, r.key, r.value))
        out += [] if x is None else (x if isinstance(x, list) else [x])
    return lab.Result(res.name, lab.outcome_of(out), out, res.console, 0.0,
                      garbage=list(res.garbage))


def setval(step, key, value):
    def fn(r):
        if r.step == step and r.key == key:
            r.value = value
        return r
    return fn


def failed(fn, *args, **kw):
    c = C.Checker("t", "series")
    fn(c, *args, **kw)
    return c.failed()


class ParseRecords(unittest.TestCase):
    def test_fields(self):
        r = lab.parse_records("3:load-c:rc=0\n0:boot:klog=a=b c\n")
        self.assertEqual((r[0].idx, r[0].step, r[0].key, r[0].value), (3, "load-c", "rc", "0"))
        self.assertEqual(r[1].value, "a=b c")

    def test_malformed_lines_are_kept(self):
        garbage = []
        r = lab.parse_records("[    1.0] noise\n\n1:x:y=z\r\ngarbage:=\n", garbage)
        self.assertEqual([(x.step, x.key, x.value) for x in r], [("x", "y", "z")])
        self.assertEqual(garbage, ["[    1.0] noise", "garbage:="])

    def test_no_result_without_done(self):
        self.assertEqual(lab.outcome_of(lab.parse_records("0:boot:a=1\n")), lab.NO_RESULT)
        self.assertEqual(lab.outcome_of([]), lab.NO_RESULT)

    def test_sizes(self):
        self.assertEqual(lab.parse_size("512M"), 512 << 20)
        self.assertEqual(lab.parse_size("8G"), 8 << 30)
        self.assertRaises(ValueError, lab.parse_size, "8X")


class QemuCommandLines(unittest.TestCase):
    """No QEMU run may depend on a default device: a minimal host lacks the
    option ROM of virt's default NIC (ipxe-qemu)."""

    def setUp(self):
        self.saved = lab.initramfs
        lab.initramfs = lambda variant: "/nonexistent/first.cpio.gz"
        self.addCleanup(setattr, lab, "initramfs", self.saved)

    def commands(self):
        yield lab.dtb_dump_command("8G", "/tmp/x.dtb")
        for fw in ("dt", "uefi"):
            for icount in (False, True):
                yield lab.qemu_command("series", "8G", "x", "/tmp", firmware=fw,
                                       icount=icount, dtb="/tmp/x.dtb", kernel="/k")

    def test_every_command_has_nodefaults(self):
        n = 0
        for cmd in self.commands():
            n += 1
            self.assertIn("-nodefaults", cmd, cmd)
            self.assertNotIn("-net", cmd)
        self.assertEqual(n, 5)

    def test_every_device_is_declared(self):
        cmd = list(self.commands())[1]
        devs = [cmd[i + 1] for i, a in enumerate(cmd) if a == "-device"]
        self.assertEqual(devs, ["virtio-serial-device", "virtserialport,chardev=lab,name=lab"])
        self.assertIn("-serial", cmd)

    def test_no_other_qemu_invocation(self):
        """Every QEMU command is built by lab.qemu_base()."""
        hits = []
        for d in ("lab", "bench", "tests"):
            for root, _, files in os.walk(os.path.join(TOP, d)):
                for f in files:
                    if f == "test_lab.py":   # its fake QEMU below
                        continue
                    if f.endswith((".py", ".sh", "Makefile")) or "." not in f:
                        p = os.path.join(root, f)
                        with open(p, errors="replace") as fh:
                            for i, line in enumerate(fh, 1):
                                if re.search(r"[\"']qemu-system-|^\s*qemu-system-", line):
                                    hits.append("%s:%d" % (os.path.relpath(p, TOP), i))
        self.assertEqual([h for h in hits if not h.startswith("lab/lab.py:")], [])
        self.assertEqual(len(hits), 1, hits)


class HelperFailures(unittest.TestCase):
    """A failed host-side step is one line naming the step and its log."""

    def test_failing_helper(self):
        with tempfile.TemporaryDirectory() as d:
            log = os.path.join(d, "h.log")
            with self.assertRaises(lab.LabError) as e:
                lab.run_helper("dtc (dtb to dts)", ["sh", "-c", "echo bad input >&2; exit 3"], log)
            msg = str(e.exception)
            self.assertEqual(msg.count("\n"), 0)
            self.assertIn("dtc (dtb to dts) failed (exit 3: bad input)", msg)
            self.assertIn(log, msg)

    def test_missing_helper(self):
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(lab.LabError) as e:
                lab.run_helper("dtb dump", ["/nonexistent/qemu"], os.path.join(d, "l"))
            self.assertIn("dtb dump: cannot run /nonexistent/qemu", str(e.exception))

    def test_qemu_that_does_not_start(self):
        """A QEMU that exits at once is a LAB_ERROR with QEMU's own reason."""
        with tempfile.TemporaryDirectory() as d:
            fake = os.path.join(d, "qemu-system-aarch64")
            with open(fake, "w") as f:
                f.write("#!/bin/sh\necho 'qemu-system-aarch64: failed to find romfile "
                        "\"efi-virtio.rom\"' >&2\nexit 1\n")
            os.chmod(fake, stat.S_IRWXU)
            old = os.environ["PATH"]
            os.environ["PATH"] = d + os.pathsep + old
            saved = lab.initramfs
            lab.initramfs = lambda v: fake
            try:
                r = lab.run_guest("unit-fake-qemu", kernel=fake, timeout=10)
            finally:
                os.environ["PATH"] = old
                lab.initramfs = saved
            self.assertEqual(r.outcome, lab.LAB_ERROR)
            self.assertIn('failed to find romfile "efi-virtio.rom"', r.error)
            self.assertEqual(failed(C.check_boot, r), ["lab_steps_succeeded"])

    def test_unknown_variant_is_an_error_not_a_traceback(self):
        r = lab.run_guest("unit-bad-variant", variant="no-such-variant", timeout=5)
        self.assertEqual(r.outcome, lab.LAB_ERROR)
        self.assertIn("unknown variant", r.error)


class RecordedCrashRun(unittest.TestCase):
    """results-crash-plain-512M.txt: series, 8G, crashkernel=512M, load-c, crash."""

    def setUp(self):
        self.r = recorded("results-crash-plain-512M.txt")
        self.spec_steps = ["load-c", "crash"]

    def evaluate(self, res, name="crash-plain-512M"):
        # crash's view of the dump is CrashAnalysis's subject, on a sample
        # recorded with it; here only the guest's own records are checked.
        import vmcore
        res.analysis = {"kdump": vmcore.Analysis(error="not analysed: unit test")}
        return SC.evaluate(name, {name: res}, image_size=IMAGE).failed()

    def test_outcome_and_regions(self):
        self.assertEqual(self.r.outcome, lab.DONE)
        self.assertEqual(self.r.garbage, [])
        self.assertEqual(C.regions(self.r), [(0xe0000000, 0x100000000)])

    def test_map_figures(self):
        m = self.r.map("boot")
        # The region in blocks of its own, no edge inside a leaf.
        self.assertEqual(m["crash_in_block"], 512 << 20)
        self.assertEqual(m["crash_edges_in_leaf"], 0)
        self.assertEqual(m["crash_bytes"], 512 << 20)
        self.assertEqual(m["crash_region"], ["0xe0000000-0x100000000"])
        self.assertEqual(self.r.map("no-such-step"), {})

    def test_scenario_passes(self):
        self.assertEqual(self.evaluate(self.r), [])

    def test_capture_checks_can_fail(self):
        bad = doctored(self.r, lambda x: None if x.key == "marker_found" else x)
        self.assertEqual(failed(C.check_capture, bad), ["vmcore_dmesg_has_marker"])
        bad = doctored(self.r, setval("capture", "osrelease", ""))
        self.assertEqual(failed(C.check_capture, bad), ["vmcoreinfo_osrelease_is_first_kernel"])

    def test_protection_is_checked_in_a_crash_scenario(self):
        """Every load step gets the protection checks, crash scenarios too."""
        bad = doctored(self.r, setval("load-c", "map.invalid_crash", "0"))
        self.assertEqual(self.evaluate(bad), ["whole_regions_invalid_after_load-c"])

    def test_protection_outside_the_crash_regions(self):
        bad = doctored(self.r, setval("load-c", "map.invalid_outside", "4096"))
        self.assertEqual(self.evaluate(bad), ["nothing_new_invalid_outside_crash_load-c"])

    def test_invalid_elsewhere_compares_with_before(self):
        """With debug_pagealloc/KFENCE, invalid bytes outside may move, but
        not by an Image's worth; compared with the step before the load."""
        def shifted(after):
            def fn(x):
                if x.key == "map.invalid_outside":
                    x.value = str(after) if x.step == "load-c" else "1000000"
                return x
            return doctored(self.r, fn)
        self.assertEqual(failed(C.check_loads, shifted(1000000 + 8192), IMAGE, True), [])
        self.assertEqual(failed(C.check_loads, shifted(1000000 + IMAGE), IMAGE, True),
                         ["nothing_new_invalid_outside_crash_load-c"])
        self.assertEqual(failed(C.check_loads, shifted(1000000), IMAGE, False), [])
        self.assertEqual(failed(C.check_loads, shifted(1000000 + 4096), IMAGE, False),
                         ["nothing_new_invalid_outside_crash_load-c"])

    def test_crash_region_missing_from_the_linear_map(self):
        """crash_unmapped was computed and never checked: now it is."""
        bad = doctored(self.r, setval("boot", "map.crash_unmapped", str(2 << 20)))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["crash_unmapped_is_zero"])

    def test_shape_against_a_worse_map(self):
        self.assertEqual(failed(C.check_apart_shape, self.r, self.r, 4096), [])
        bad = doctored(self.r, setval("boot", "map.pte_outside_crash", "99999999"))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["pte_outside_crash_within_block_hull"])
        bad = doctored(self.r, setval("boot", "map.pte_tables", "600"))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["table_pages_bounded"])

    def test_memory_type_differs_from_around(self):
        """An early region mapped MEM/NORMAL inside a NORMAL-TAGGED linear
        map (the MTE finding) fails; so do neighbours that disagree."""
        bad = doctored(self.r, setval("boot", "map.crash_memtype_other", str(512 << 20)))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["crash_memtype_as_around"])
        bad = doctored(self.r, setval("boot", "map.memtype_above", "MEM/NORMAL"))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["memtype_same_on_both_sides"])

    def test_block_hull(self):
        """With 64K pages an unaligned region may take the rest of its 512M
        blocks to pages, and no more; with 4K pages nothing."""
        self.assertEqual(C.hull_extra((0x60000000, 0x70000000), 65536), 256 << 20)
        self.assertEqual(C.hull_extra((0xe0000000, 0x100000000), 65536), 0)
        self.assertEqual(C.hull_extra((0x60000000, 0x70000000), 4096), 0)
        self.assertEqual(C.hull_extra((0x62000000, 0x72000000), 16384), 0)
        self.assertEqual(C.hull_extra((0x60200000, 0x70200000), 16384), 32 << 20)

        def at(region, pte):
            def fn(x):
                if x.step == "boot" and x.key == "map.crash_region":
                    x.value = region
                if x.step == "boot" and x.key == "map.pte_outside_crash":
                    x.value = str(pte)
                return x
            return doctored(self.r, fn)
        ctl = self.r.map("boot")["pte_outside_crash"]
        hull = at("0x60000000-0x70000000", ctl + (256 << 20))
        self.assertEqual(failed(C.check_apart_shape, hull, self.r, 65536), [])
        beyond = at("0x60000000-0x70000000", ctl + (256 << 20) + 65536)
        self.assertEqual(failed(C.check_apart_shape, beyond, self.r, 65536),
                         ["pte_outside_crash_within_block_hull"])
        self.assertEqual(failed(C.check_apart_shape, hull, self.r, 4096),
                         ["pte_outside_crash_within_block_hull"])

    def test_avoidable_spans_as_control(self):
        bad = doctored(self.r, setval("boot", "map.pte_spans_avoidable", "64"))
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["pte_spans_avoidable_as_control"])

    def test_missing_figures_fail(self):
        bad = doctored(self.r, lambda x: None if x.key.startswith("map.") else x)
        self.assertEqual(failed(C.check_apart_shape, bad, self.r, 4096),
                         ["crash_edges_in_leaf_is_zero", "crash_unmapped_is_zero",
                          "crash_memtype_as_around", "memtype_same_on_both_sides",
                          "pte_outside_crash_within_block_hull",
                          "pte_spans_avoidable_as_control", "table_pages_bounded"])
        self.assertIn("whole_regions_invalid_after_load-c", self.evaluate(bad))

    def test_pte_table_span_follows_the_page_size(self):
        self.assertEqual(C.pte_table_span(4096), 2 << 20)
        self.assertEqual(C.pte_table_span(16384), 32 << 20)
        self.assertEqual(C.pte_table_span(65536), 512 << 20)

    def test_base_positive_fact(self):
        """On base the map must be all pages: the series' map fails that."""
        self.assertEqual(failed(C.check_base_shape, self.r, 8 << 30, 512 << 20, 4096),
                         ["base_pages_outside_crash_cover_ram", "base_pte_tables_cover_ram",
                          "crash_in_block_is_zero"])

        def allpte(x):
            if x.step == "boot" and x.key == "map.pte_outside_crash":
                x.value = str((8 << 30) - (512 << 20) - (30 << 20))
            if x.step == "boot" and x.key == "map.pte_tables":
                x.value = "3900"
            if x.step == "boot" and x.key == "map.crash_in_block":
                x.value = "0"
            return x
        self.assertEqual(failed(C.check_base_shape, doctored(self.r, allpte),
                                8 << 30, 512 << 20, 4096), [])

    def test_errors_on_the_channel_fail(self):
        def add(x):
            if x.step == "load-c" and x.key == "rc":
                return [x, lab.Record(x.idx, x.step, "map.error", "cannot read ptdump")]
            return x
        self.assertEqual(self.evaluate(doctored(self.r, add)), ["no_errors_reported"])

        def unknown(x):
            if x.step == "crash":
                return [lab.Record(x.idx, "bogus", "error", "unknown step bogus"), x]
            return x
        self.assertIn("no_errors_reported", self.evaluate(doctored(self.r, unknown)))

    def test_malformed_line_fails(self):
        bad = doctored(self.r, lambda x: x)
        bad.garbage = ["map.crash_linear_map: cannot open /sys/kernel/debug"]
        self.assertEqual(self.evaluate(bad), ["result_channel_well_formed"])

    def test_missing_step_fails(self):
        bad = doctored(self.r, lambda x: None if x.step == "load-c" else x)
        self.assertIn("every_step_reported", self.evaluate(bad))

    def test_hang_is_not_a_pass(self):
        bad = doctored(self.r, lambda x: None if x.step == "end" else x)
        self.assertEqual(bad.outcome, lab.NO_RESULT)
        self.assertIn("guest_finished", self.evaluate(bad))


TAP_OK = ["TAP version 13", "1..6",
          "ok 1 protect_after_load",
          "ok 2 unprotect_after_unload",
          "ok 3 crash_regions_mapped_apart",
          "ok 4 crash_memory_type_as_around",
          "ok 5 pte_outside_crash_within_limit",
          "ok 6 # SKIP shrink_returns_memory: set KDUMP_SHRINK=1 to run",
          "# Totals: pass:5 fail:0 xfail:0 xpass:0 skip:1 error:0"]


def selftest_result(tap, rc="0"):
    recs = [lab.Record(0, "boot", "release", "6.1"), lab.Record(1, "selftest", "rc", rc)]
    recs += [lab.Record(1, "selftest", "tap", t) for t in tap]
    return lab.Result("t", lab.DONE, recs, "", 0.0)


class Selftest(unittest.TestCase):
    def setUp(self):
        self.expect = SC.selftest_expect(SC.SCENARIOS["plain-512M"])

    def test_passes(self):
        self.assertEqual(failed(C.check_selftest, selftest_result(TAP_OK), self.expect), [])

    def test_unexpected_skip_fails(self):
        tap = [t.replace("ok 5 pte", "ok 5 # SKIP pte") for t in TAP_OK]
        self.assertEqual(failed(C.check_selftest, selftest_result(tap), self.expect),
                         ["selftest_pte_outside_crash_within_limit_ok"])

    def test_crash_midway_fails(self):
        self.assertEqual(failed(C.check_selftest, selftest_result(TAP_OK[:5], "139"), self.expect),
                         ["selftest_plan_matches_results", "selftest_exit_status",
                          "selftest_crash_memory_type_as_around_ok",
                          "selftest_pte_outside_crash_within_limit_ok",
                          "selftest_shrink_returns_memory_skip"])

    def test_failure_and_exit_status(self):
        tap = [t.replace("ok 3 crash", "not ok 3 crash") for t in TAP_OK]
        self.assertEqual(failed(C.check_selftest, selftest_result(tap, "1"), self.expect),
                         ["selftest_exit_status", "selftest_crash_regions_mapped_apart_ok"])

    def test_no_records_fail(self):
        r = lab.Result("t", lab.DONE, [lab.Record(0, "boot", "a", "b")], "", 0.0)
        self.assertEqual(failed(C.check_selftest, r, self.expect), ["selftest_ran"])

    def test_unexpected_test_fails(self):
        tap = TAP_OK[:1] + ["1..7"] + TAP_OK[2:8] + ["ok 7 something_new"]
        self.assertEqual(failed(C.check_selftest, selftest_result(tap), self.expect),
                         ["selftest_no_unexpected_tests"])

    def test_base_expects_what_it_lacks(self):
        """The unpatched kernel's kselftest must fail where it lacks what
        the series brings: on 6.1, which protects the loaded segments and
        page-maps all of RAM, the protection of the whole regions and the
        blocks outside them; 6.12 and 7.3 protect nothing, and the tests
        skip.  A base kernel whose kselftest passed would not be biting."""
        exp = SC.selftest_expect(SC.SCENARIOS["base-plain-512M"])
        if variants.LINE["protects"]:
            want = [SC.ST_LOAD, SC.ST_LIMIT]
        else:
            want = []
        self.assertEqual(sorted(t for t, o in exp.items() if o == "fail"), sorted(want))
        self.assertEqual(failed(C.check_selftest, selftest_result(TAP_OK, "0"), exp),
                         ["selftest_exit_status"]
                         + ["selftest_%s_fail" % t for t in sorted(want, key=list(exp).index)])

    def test_skip_for_another_reason_fails(self):
        """A test expected to skip must skip for its reason: the shrink test
        skipping because the capture kernel could not be read (a lab step
        gone wrong) is not the skip the scenario expects."""
        spec = SC.SCENARIOS["plain-512M"]
        why = SC.selftest_skip_reasons(spec)
        self.assertEqual(failed(C.check_selftest, selftest_result(TAP_OK), self.expect, why), [])
        tap = [t.replace("set KDUMP_SHRINK=1 to run", "cannot read KDUMP_KERNEL /lab/Image")
               for t in TAP_OK]
        self.assertEqual(failed(C.check_selftest, selftest_result(tap), self.expect, why),
                         ["selftest_shrink_returns_memory_skips_for_its_reason"])
        # The control boot: every test skips for want of a crash region.
        ctl = SC.SCENARIOS["control"]
        nothing = ["TAP version 13", "1..6"] + [
            "ok %d # SKIP %s: no Crash kernel in /proc/iomem" % (i, t) for i, t in enumerate(
                (SC.ST_LOAD, SC.ST_UNLOAD, SC.ST_MAPPED, SC.ST_MEMTYPE, SC.ST_LIMIT), 1)] + [
            "ok 6 # SKIP shrink_returns_memory: set KDUMP_SHRINK=1 to run"]
        exp, why = SC.selftest_expect(ctl), SC.selftest_skip_reasons(ctl)
        self.assertEqual(failed(C.check_selftest, selftest_result(nothing), exp, why), [])
        other = [t.replace("2 # SKIP unprotect_after_unload: no Crash kernel in /proc/iomem",
                           "2 # SKIP unprotect_after_unload: nothing loaded") for t in nothing]
        self.assertEqual(failed(C.check_selftest, selftest_result(other), exp, why),
                         ["selftest_unprotect_after_unload_skips_for_its_reason"])

    def test_forced_scenarios_expect_the_limit_skip(self):
        for name in ("rodata-full", "debug-pagealloc"):
            self.assertEqual(SC.selftest_expect(SC.SCENARIOS[name])[SC.ST_LIMIT], "skip")


class ScenarioTable(unittest.TestCase):
    def test_every_scenario_is_well_formed(self):
        for name, s in SC.SCENARIOS.items():
            self.assertIn(s["shape"], (None, "control", "shape", "nothing", "forced"), name)
            self.assertIn(s["firmware"], ("dt", "uefi"), name)
            lab.parse_size(s["mem"])
            if s["shape"] in ("shape", "nothing") and not name.startswith("base"):
                self.assertIn(SC.control_of(name), SC.SCENARIOS, name)
            for st in s["steps"]:
                self.assertIn(st.split(":")[0], ("load-c", "load-s", "unload", "selftest",
                                                 "crash", "shrink", "report", "dump",
                                                 "pattern", "stray"), name)

    def test_every_kernels_table_is_well_formed(self):
        """The scenario tables of every kernel line, whichever this run
        uses: every step known, every control present, every variant
        known to variants.py."""
        code = ("import sys; sys.path.insert(0, %r)\n"
                "import scenarios as SC, variants\n"
                "names = set(variants.names())\n"
                "for n, s in SC.SCENARIOS.items():\n"
                "    assert s['variant'] in names, (n, s['variant'])\n"
                "    assert all(st.split(':')[0] in ('load-c', 'load-s', 'unload', 'selftest',"
                " 'crash', 'shrink', 'pattern', 'stray') for st in s['steps']), n\n"
                "    if s['shape'] in ('shape', 'nothing'):\n"
                "        assert SC.control_of(n) in SC.SCENARIOS, n\n"
                "print(len(SC.SCENARIOS))\n" % os.path.join(TOP, "lab"))
        for kernel in variants.KERNELS:
            p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               env=dict(os.environ, KERNEL=kernel))
            self.assertEqual(p.returncode, 0, (kernel, p.stderr[-500:]))
            self.assertGreater(int(p.stdout), 30, kernel)

    def test_every_layout_is_crashed_on_dt_and_uefi(self):
        def crashed(pred):
            return [n for n, s in SC.SCENARIOS.items()
                    if "crash" in s["steps"] and pred(s) and n not in SC.FULL_ONLY]
        for fw in ("dt", "uefi"):
            for form in ("crashkernel=512M", ",high crashkernel=128M,low", "@0x60000000"):
                self.assertTrue(crashed(lambda s: s["firmware"] == fw and form in s["cmdline"]),
                                (fw, form))



class CrashAnalysis(unittest.TestCase):
    """check_analysis on what crash printed for a recorded capture (the -d 31
    dump of crash-fulldump-1G, series, 4K pages) and on doctored copies:
    each check fails on its bad sample."""

    RES = "results-crash-fulldump-1G.txt"
    OUT = os.path.join("crash", "crash-fulldump-1G-kdump.out.gz")

    def analysis(self, res, edit=None):
        import gzip
        import vmcore
        with gzip.open(os.path.join(DATA, self.OUT), "rt") as f:
            text = f.read()
        if edit:
            text = edit(text)
        info = vmcore.vmcoreinfo(res)
        return vmcore.Analysis(dump="dump.kdump", outputs=vmcore.split_outputs(text), rc=0,
                               vtop_points=vmcore.vtop_points(res, info),
                               transfer=[("kdump_transferred_intact", True, "")])

    def failed_on(self, res=None, edit=None, blocks=True):
        res = res or recorded(self.RES)
        # The pattern step is checked against the ELF dump; this is the
        # filtered one.
        res.analysis = {"kdump": self.analysis(res, edit)}
        return failed(C.check_analysis, res, 4096, 1 << 30, False, blocks)

    def test_recorded_passes(self):
        self.assertEqual(self.failed_on(), [])

    def test_unprotected_kernel_must_show_no_invalid_entry(self):
        """A kernel without the protection (6.12): the recorded series dump,
        whose loaded capture kernel is invalid, must fail that check."""
        res = recorded(self.RES)
        res.analysis = {"kdump": self.analysis(res)}
        self.assertEqual(failed(C.check_analysis, res, 4096, 1 << 30, False, True, False),
                         ["crash_vtop_capture_kernel_unprotected"])

    def test_log_must_show_the_stray_write(self):
        """With a stray step, the first oops in crash's log must be at an
        address of the crash region; the recorded log has none."""
        res = recorded(self.RES)
        res.records.append(lab.Record(9, "stray", "oops_line", "Unable to handle kernel "
                                      "paging request at virtual address ffff000020000000"))
        res.analysis = {"kdump": self.analysis(res)}
        self.assertEqual(failed(C.check_analysis, res, 4096, 1 << 30, False, True),
                         ["crash_log_shows_stray_write_oops"])
        # The log with an oops at an address in the region passes.
        region = C.regions(res)[0]
        import vmcore
        va = vmcore.linear_va(region[0], vmcore.vmcoreinfo(res))
        self.assertEqual(self.failed_on(res, edit=lambda t: t.replace(
            "sysrq triggered crash", "Unable to handle kernel paging request at virtual "
            "address %016x" % va)), [])

    def test_recorded_has_every_kind_of_point(self):
        import vmcore
        res = recorded(self.RES)
        a = self.analysis(res)
        walks = {}
        for k, t in a.outputs.items():
            if k.startswith("vtop"):
                walks.update(vmcore.parse_vtop(t))
        self.assertEqual(len(walks), 512)   # 1 GiB of RAM, every 2 MiB
        self.assertTrue(any(w.block == "2MB" for w in walks.values()))
        self.assertTrue(any(w.pa is not None and not w.block for w in walks.values()))
        self.assertTrue(any(w.pa is None for w in walks.values()))

    def test_other_release(self):
        self.assertIn("crash_sys_release_is_first_kernel",
                      self.failed_on(edit=lambda t: t.replace("RELEASE: 6.1.192",
                                                              "RELEASE: 6.1.191")))

    def test_other_panic(self):
        self.assertIn("crash_sys_panic_is_sysrq",
                      self.failed_on(edit=lambda t: t.replace("sysrq triggered crash", "Oops")))

    def test_marker_missing_from_log(self):
        res = doctored(recorded(self.RES), setval("crash", "marker", "m00000000"))
        self.assertIn("crash_log_has_marker", self.failed_on(res))

    def test_bt_without_the_sysrq_frame(self):
        self.assertIn("crash_bt_shows_sysrq_crash",
                      self.failed_on(edit=lambda t: re.sub(r".*sysrq_handle_crash.*\n", "", t)))

    def test_kmem_total_off_by_one_page(self):
        self.assertIn("crash_kmem_total_is_memtotal",
                      self.failed_on(edit=lambda t: t.replace("TOTAL MEM   190550",
                                                              "TOTAL MEM   190549")))

    def test_walk_to_another_page(self):
        # One PTE-mapped point walks 4 KiB off.
        def edit(t):
            return re.sub(r"(?m)^  PAGE: 40200000$", "  PAGE: 40201000", t, count=1)
        self.assertIn("crash_vtop_linear_map_consistent", self.failed_on(edit=edit))

    def test_block_of_another_size(self):
        # A 2 MiB block read as a 1 GiB one: its base is then wrong.
        def edit(t):
            return re.sub(r"(?m)^  PAGE: 40600000  \(2MB\)$", "  PAGE: 40600000  (1GB)", t,
                          count=1)
        self.assertIn("crash_vtop_linear_map_consistent", self.failed_on(edit=edit))

    def test_points_without_answer(self):
        def edit(t):
            return re.sub(r"(?s)===lab:vtop3===.*?(?====lab:)", "===lab:vtop3===\n", t)
        self.assertIn("crash_vtop_sampled_all_ram", self.failed_on(edit=edit))

    def test_invalid_entry_naming_another_page(self):
        def edit(t):
            return t.replace("=> 8e800006ee00704", "=> 8e800006f000704", 1)
        self.assertIn("crash_vtop_linear_map_consistent", self.failed_on(edit=edit))

    def test_invalid_outside_the_crash_region_and_none_inside(self):
        # The same dump, but the guest said its crash region was elsewhere.
        res = doctored(recorded(self.RES), setval("boot", "iomem_crash", "0x50000000-0x60000000"))
        bad = self.failed_on(res)
        self.assertIn("crash_vtop_valid_outside_crash_regions", bad)
        self.assertIn("crash_vtop_capture_kernel_protected", bad)

    def test_no_kernel_alias_records(self):
        res = doctored(recorded(self.RES), lambda r: None if r.key == "kernel" else r)
        self.assertIn("crash_vtop_kernel_alias_consistent", self.failed_on(res))

    def test_blocks_where_none_may_be(self):
        self.assertIn("crash_vtop_sees_no_blocks", self.failed_on(blocks=False))

    def test_transfer_mismatch(self):
        res = recorded(self.RES)
        res.analysis = {"kdump": self.analysis(res)}
        res.analysis["kdump"].transfer = [("kdump_transferred_intact", False, "sha256 differs")]
        self.assertIn("kdump_transferred_intact",
                      failed(C.check_analysis, res, 4096, 1 << 30, False, True))

    def test_fulldump_records_missing(self):
        """A scenario that asked for the ELF vmcore (lab.fulldump=1) fails
        "elf_exported" when the guest sent no record of it; one that did
        not ask has no ELF checks at all."""
        import tempfile
        import vmcore
        res = doctored(recorded(self.RES),
                       lambda r: None if r.key.startswith("vmcore_") else r)
        with tempfile.TemporaryDirectory() as d:
            _, checks = vmcore.extract(res, d, True)
            self.assertIn(("elf_exported", False), [(n, ok) for n, ok, _ in checks])
            _, checks = vmcore.extract(res, d, False)
            self.assertEqual([n for n, _, _ in checks if n.startswith("elf")], [])

    def test_crash_stopped_early(self):
        self.assertIn("crash_ran", self.failed_on(
            edit=lambda t: t[:t.index("===lab:end===")]))

    def test_no_analysis(self):
        res = recorded(self.RES)
        self.assertIn("dump_analysed", failed(C.check_analysis, res, 4096, 1 << 30))

    def test_sixteen_k_is_a_note_not_a_pass(self):
        import vmcore
        res = recorded(self.RES)
        res.analysis = {"kdump": vmcore.Analysis(error="not analysed: crash 8.0.2 does not "
                                                       "support 16K pages")}
        c = C.Checker("t", "g16k47")
        C.check_analysis(c, res, 16384, 1 << 36)
        self.assertEqual([n for n, ok, _ in c.results if ok], [])
        self.assertEqual(len(c.notes), 1)

    def elf_failed_on(self, edit=None):
        """check_analysis on the recorded ELF dump's crash output (the
        pattern is read back there), the -d 31 one alongside."""
        import gzip
        import vmcore
        res = recorded(self.RES)
        info = vmcore.vmcoreinfo(res)
        with gzip.open(os.path.join(DATA, "crash", "crash-fulldump-1G-elf.out.gz"), "rt") as f:
            text = f.read()
        if edit:
            text = edit(text)
        elf = vmcore.Analysis(dump="dump.elf", outputs=vmcore.split_outputs(text), rc=0,
                              vtop_points=vmcore.vtop_points(res, info),
                              pattern=vmcore.pattern_pages(res, info),
                              transfer=[("elf_transferred_intact", True, "")])
        res.analysis = {"kdump": self.analysis(res), "elf": elf}
        return failed(C.check_analysis, res, 4096, 1 << 30, False, True)

    def test_recorded_elf_passes(self):
        self.assertEqual(self.elf_failed_on(), [])

    def test_pattern_word_wrong(self):
        # One word of the first pattern page differs, as read by address.
        def edit(t):
            return re.sub(r"(?m)^(\s+4[0-9a-f]{7}:\s+)4c414250", r"\g<1>4c414251", t, count=1)
        self.assertIn("crash_rd_pattern_by_physical_address_elf", self.elf_failed_on(edit))

    def test_pattern_page_walks_elsewhere(self):
        def edit(t):
            i = t.index("===lab:vtopp0===")
            head, tail = t[:i], t[i:]
            return head + re.sub(r"(?m)^  PAGE: ([0-9a-f]+)",
                                 lambda m: "  PAGE: %x" % (int(m.group(1), 16) + 0x1000),
                                 tail, count=1)
        self.assertIn("crash_vtop_pattern_pages_walk_to_their_page_elf", self.elf_failed_on(edit))

    def test_a_damaged_dump_that_passes_is_flagged(self):
        # doctor() cut this dump, but crash read it as if whole: the check
        # that watches the damage must fail.
        res = recorded(self.RES)
        good = self.analysis(res)
        res.analysis = {"kdump": good, "kdump-truncated": self.analysis(res)}
        res.analysis["kdump-truncated"].doctored = "cut to half (not really)"
        self.assertEqual(failed(C.check_analysis, res, 4096, 1 << 30, False, True),
                         ["damaged_dump_fails_checks_kdump-truncated"])

    def test_no_rebuilt_slot_check_without_a_late_region(self):
        # Base, rodata=full: the log names no region mapped apart, and the
        # map is not expected to keep blocks: no slot checks.
        res = doctored(recorded(self.RES), lambda r: None if r.key == "klog" and
                       "mapped apart" in r.value else r)
        res.analysis = {"kdump": self.analysis(res)}
        c = C.Checker("t", "series")
        C.check_analysis(c, res, 4096, 1 << 30, False, None)
        names = [n for n, _, _ in c.results]
        self.assertNotIn("crash_vtop_rebuilt_slot_consistent", names)
        self.assertNotIn("pattern_pages_in_rebuilt_slot", names)
        self.assertEqual(c.failed(), [])
        # The series keeping blocks without the line: a failure, not a
        # check that quietly went away.
        self.assertEqual(failed(C.check_analysis, res, 4096, 1 << 30, False, True),
                         ["crash_vtop_split_slots_logged"])

    def test_linear_address_conversion(self):
        import vmcore
        info = {"NUMBER(VA_BITS)": "48", "NUMBER(PHYS_OFFSET)": "0x40000000"}
        self.assertEqual(vmcore.linear_va(0x40200000, info), 0xffff000000200000)
        self.assertEqual(vmcore.linear_pa(0xffff000000200000, info), 0x40200000)
        self.assertIsNone(vmcore.linear_pa(0xffff800008000000, info))   # kernel image
        info39 = {"NUMBER(VA_BITS)": "39", "NUMBER(PHYS_OFFSET)": "0x40000000"}
        self.assertEqual(vmcore.linear_va(0x80000000, info39), 0xffffff8040000000)
        # A PHYS_OFFSET above the address (a randomised memstart) wraps.
        hi = {"NUMBER(VA_BITS)": "48", "NUMBER(PHYS_OFFSET)": "0xfffffff000000000"}
        va = vmcore.linear_va(0x40000000, hi)
        self.assertTrue(0 <= va < 1 << 64)
        self.assertEqual(vmcore.linear_pa(va, hi), 0x40000000)

    def test_elf_offset(self):
        import struct
        import vmcore
        with tempfile.NamedTemporaryFile() as f:
            eh = bytearray(64)
            eh[:5] = b"\x7fELF\x02"
            struct.pack_into("<Q", eh, 32, 64)
            struct.pack_into("<HH", eh, 54, 56, 1)
            ph = struct.pack("<IIQQQQQQ", 1, 0, 0x1000, 0, 0x40000000, 0x100000, 0x100000, 0)
            f.write(bytes(eh) + ph)
            f.flush()
            self.assertEqual(vmcore.elf_offset(f.name, 0x40000010), 0x1010)
            self.assertIsNone(vmcore.elf_offset(f.name, 0x40100000))


class Unprotected(unittest.TestCase):
    """The checks that tell a kernel without the protection (6.12 itself)
    from one with it: each fails on the other kind's sample.  The sample
    is the recorded series run (protected, region mapped apart in blocks
    of its own)."""

    def setUp(self):
        self.r = recorded("results-crash-plain-512M.txt")
        self.tmp = tempfile.mkdtemp()

    def tearDown(self):
        for f in os.listdir(self.tmp):
            os.unlink(os.path.join(self.tmp, f))
        os.rmdir(self.tmp)

    def test_loads_left_valid(self):
        self.assertEqual(failed(C.check_loads, self.r, IMAGE, False, False),
                         ["segments_left_valid_after_load-c"])
        open_ = doctored(self.r, setval("load-c", "map.invalid_crash", "0"))
        self.assertEqual(failed(C.check_loads, open_, IMAGE, False, False), [])
        self.assertEqual(failed(C.check_loads, open_, IMAGE, False, True),
                         ["segments_invalid_after_load-c"])

    def test_blocks_as_control(self):
        # A region page-mapped (crash_in_block 0) is not what 6.12 does.
        pages = doctored(self.r, setval("boot", "map.crash_in_block", "0"))
        self.assertEqual(failed(C.check_blocks_as_control, pages, self.r),
                         ["crash_region_in_blocks"])
        blk = self.r
        self.assertEqual(failed(C.check_blocks_as_control, blk, blk), [])
        more = doctored(blk, setval("boot", "map.pte_tables", "9999"))
        self.assertEqual(failed(C.check_blocks_as_control, more, blk),
                         ["same_pte_tables_as_control"])

    # The sample's region is 0xe0000000-0x100000000; PHYS_OFFSET 0x40000000.
    INFO = ["NUMBER(VA_BITS)=48", "NUMBER(PHYS_OFFSET)=0x40000000"]
    IN_REGION = "ffff0000a0200000"      # PA 0xe0200000
    OUTSIDE = "ffff000000200000"        # PA 0x40200000

    def with_stray(self, rc, oops, capture=True, at=IN_REGION, console=None,
                   first="0xe0200000"):
        """The sample with a stray step after its load (records of step 2,
        the crash moved to 3), its capture records kept (with VMCOREINFO)
        or dropped, and a console log with CONSOLE's text.  FIRST: the
        load's first invalid page in the region (None: no such record)."""
        out = []
        for x in self.r.records:
            if x.step in ("capture", "end") and not capture:
                continue
            if x.step == "crash":
                x = lab.Record(3, x.step, x.key, x.value)
            out.append(x)
            if x.step == "load-c" and x.key == "crash_size":
                if first:
                    out.append(lab.Record(1, "load-c", "map.first_invalid_crash", first))
                out += [lab.Record(2, "stray", "target", "0xe0000000-0x100000000"),
                        lab.Record(2, "stray", "rc", rc), lab.Record(2, "stray", "oops", oops)]
                if oops != "0":
                    out.append(lab.Record(2, "stray", "oops_line", "Unable to handle kernel "
                                          "paging request at virtual address " + at))
        if capture:
            out += [lab.Record(0, "capture", "vmcoreinfo", i) for i in self.INFO]
        path = os.path.join(self.tmp, "console-%d.log" % len(os.listdir(self.tmp)))
        with open(path, "w") as f:
            f.write(console if console is not None else
                    "Booting Linux on physical CPU 0x0\nStarting crashdump kernel...\nBye!\n")
        return lab.Result("t", lab.outcome_of(out), out, path, 0.0)

    def test_stray_write_faults_with_protection(self):
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1"), True), [])
        self.assertEqual(failed(C.check_stray, self.with_stray("0", "0"), True),
                         ["stray_write_faulted", "stray_fault_at_first_invalid_page"])
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1", at=self.OUTSIDE),
                                True), ["stray_fault_at_first_invalid_page"])
        self.assertEqual(failed(C.check_stray, self.r, True),
                         ["stray_write_ran", "stray_write_faulted",
                          "stray_fault_at_first_invalid_page"])
        # In the region, but not where the write first met an invalid page
        # (here 2 MiB further on), or with no figure of where that is.
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1", first="0xe0000000"),
                                True), ["stray_fault_at_first_invalid_page"])
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1", first=None), True),
                         ["stray_fault_at_first_invalid_page"])
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1", first="-"), True),
                         ["stray_fault_at_first_invalid_page"])
        # A step without map figures (the kselftest) between the load and
        # the stray write: the load's figures still count.
        between = self.with_stray("139", "1")
        between.records.append(lab.Record(1, "selftest", "rc", "0"))
        self.assertEqual(failed(C.check_stray, between, True), [])
        # At the reported first invalid page, but outside the region the
        # write went to.
        self.assertEqual(failed(C.check_stray, self.with_stray(
            "139", "1", at=self.OUTSIDE, first="0x40200000"), True),
            ["stray_fault_at_first_invalid_page"])

    def test_stray_write_loses_the_capture_without(self):
        lost = self.with_stray("0", "0", capture=False)
        ctl = self.r
        self.assertEqual(lost.outcome, lab.NO_RESULT)
        self.assertEqual(failed(C.check_stray, lost, False, ctl), [])
        self.assertEqual(failed(C.check_stray, self.with_stray("0", "0"), False, ctl),
                         ["capture_lost"])
        self.assertEqual(failed(C.check_stray, self.with_stray("139", "1", capture=False),
                                False, ctl), ["stray_write_went_through"])
        # A guest that hung before kexec, or a capture kernel that booted
        # and then hung, is not the stray write's loss.
        self.assertEqual(failed(C.check_stray, self.with_stray(
            "0", "0", capture=False, console="Booting Linux on physical CPU 0x0\n"), False, ctl),
            ["capture_kernel_entered"])
        self.assertEqual(failed(C.check_stray, self.with_stray(
            "0", "0", capture=False, console="Booting Linux on physical CPU 0x0\n"
            "Starting crashdump kernel...\nBooting Linux on physical CPU 0x0\n"), False, ctl),
            ["capture_kernel_never_booted"])
        # Nor when the same boot without the write does not capture either.
        self.assertEqual(failed(C.check_stray, lost, False, lost),
                         ["same_layout_captures_without_stray_write"])
        self.assertEqual(failed(C.check_stray, lost, False, None),
                         ["same_layout_captures_without_stray_write"])

    def test_pages_but_the_kernel_alias(self):
        """rodata=full on 6.12: PMD blocks only within the block hull of
        Kernel code (the sample's boot records it as 0x40210000-0x405f0000,
        which touches two 2 MiB blocks)."""
        base = self.r
        self.assertEqual(C.regions_of(base.all("boot", "kernel"))[0], (0x40210000, 0x405f0000))
        hull = 4 << 20
        rest = (8 << 30) - (512 << 20) - hull
        ok = doctored(doctored(doctored(base, setval("boot", "map.pud_bytes", "0")),
                               setval("boot", "map.pmd_bytes", str(hull))),
                      setval("boot", "map.pte_outside_crash", str(rest)))
        self.assertEqual(failed(C.check_pages_but_kernel_alias, ok, 4096), [])
        more = doctored(ok, setval("boot", "map.pmd_bytes", str(hull + (2 << 20))))
        self.assertEqual(failed(C.check_pages_but_kernel_alias, more, 4096),
                         ["pages_but_the_kernel_alias"])
        # Blocks elsewhere: fewer pages than the rest of RAM.
        few = doctored(ok, setval("boot", "map.pte_outside_crash", str(rest - (66 << 20))))
        self.assertEqual(failed(C.check_pages_but_kernel_alias, few, 4096),
                         ["pages_cover_the_rest_of_ram"])
        # The recorded series boot has 1G blocks: not a forced map.
        self.assertEqual(failed(C.check_pages_but_kernel_alias, base, 4096),
                         ["pages_but_the_kernel_alias", "pages_cover_the_rest_of_ram"])
        # Without Kernel code records nothing can be allowed.
        self.assertEqual(failed(C.check_pages_but_kernel_alias,
                                doctored(ok, lambda x: None if x.key == "kernel" else x), 4096),
                         ["pages_but_the_kernel_alias"])

    def shrunk(self, total_kb, free_kb):
        """The sample with a shrink of 64M as step 2 (its linear-map figures
        those of the boot)."""
        out = list(self.r.records)
        out += [lab.Record(2, "shrink", "rc", "0"),
                lab.Record(2, "shrink", "memfree_delta_kb", str(free_kb)),
                lab.Record(2, "shrink", "memtotal_delta_kb", str(total_kb)),
                lab.Record(2, "shrink", "iomem_crash", "0xe0000000-0xfc000000"),
                lab.Record(2, "shrink", "crash_size", str((512 - 64) << 20))]
        out += [lab.Record(2, "shrink", x.key, x.value) for x in self.r.records
                if x.step == "boot" and x.key.startswith("map.")]
        return lab.Result("t", lab.DONE, out, "console.log", 0.0)

    def test_shrink_counts_managed_pages_exactly(self):
        d = 64 << 20
        self.assertEqual(failed(C.check_shrink, self.shrunk(65536, 65536), d), [])
        # Freed pages still on the per-CPU lists: MemFree short, MemTotal exact.
        self.assertEqual(failed(C.check_shrink, self.shrunk(65536, 60800), d), [])
        # More than 4 MiB beyond the delta (seen once on 7.3: +69900 KiB).
        self.assertEqual(failed(C.check_shrink, self.shrunk(65536, 69900), d),
                         ["memfree_grew_by_delta"])
        self.assertEqual(failed(C.check_shrink, self.shrunk(65472, 65536), d),
                         ["memtotal_grew_by_delta"])
        self.assertEqual(failed(C.check_shrink, self.shrunk(65536, 30000), d),
                         ["memfree_grew_by_delta"])

    def test_capture_refused_by_makedumpfile_for_the_known_reason_only(self):
        known = "PAGE SIZE 0x1000 and VA Bits 52 not supported"
        def mkd(rc, line):
            def fn(x):
                if x.step == "capture" and x.key == "makedumpfile_rc":
                    return [lab.Record(x.idx, x.step, x.key, rc),
                            lab.Record(x.idx, x.step, "makedumpfile_log", line)]
                return x
            return doctored(self.r, fn)
        self.assertEqual(failed(C.check_capture, mkd("1", "calculate_plat_config: " + known),
                                known), [])
        self.assertEqual(failed(C.check_capture, mkd("1", "Can't read the dump"), known),
                         ["makedumpfile_stops_only_for_the_known_reason"])
        # A makedumpfile that worked is not the known refusal either.
        self.assertEqual(failed(C.check_capture, self.r, known),
                         ["makedumpfile_stops_only_for_the_known_reason"])
        bad = doctored(mkd("1", known), lambda x: None if x.key == "marker_found" else x)
        self.assertEqual(failed(C.check_capture, bad, known), ["vmcore_dmesg_has_marker"])

    def test_lost_guest_must_not_finish(self):
        self.assertEqual(failed(C.check_reports, self.r, ["load-c", "crash"], True),
                         ["guest_did_not_finish"])


if __name__ == "__main__":
    unittest.main()
