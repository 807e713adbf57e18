"""Every check the lab can emit is made to fail by some unit test
(tests/check_coverage.py): a check no unit test has seen failing may be
one that cannot fail.  The coverage run runs the other unit test modules
of run_tests.UNIT_MODULES, each in a process of its own, never this one."""

import os
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import check_coverage  # noqa: E402

# The stems no unit test can make fail, and why.  Each is listed in
# tests/check-coverage.md ("checks that cannot fail on their own"); a stem
# here that a unit test does make fail, or that no call emits any more,
# fails test_cannot_fail_list_is_true.
CANNOT_FAIL = {
    # check_analysis names a damaged copy's check "damaged_dump_fails_checks"
    # + "_" + its name; the bare name would need a damaged copy called
    # "kdump", and vmcore.doctor() only makes "kdump-truncated" and
    # "elf-pte-flipped": no run emits it.
    "damaged_dump_fails_checks":
        "never emitted: the suffix is empty only for the dump named kdump, and "
        "vmcore.doctor() names its damaged copies kdump-truncated and elf-pte-flipped, "
        "so the check is always damaged_dump_fails_checks_<copy> (made to fail as such)",
}


class CheckCoverage(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.environ.get(check_coverage.CHILD_ENV):
            raise RuntimeError("test_check_coverage inside a coverage run: recursion")
        cls.cov = check_coverage.coverage()

    def test_every_check_name_is_read(self):
        """No .check/.eq call whose name the static reading cannot follow."""
        self.assertEqual(self.cov.errors, [])
        self.assertGreater(len(self.cov.stems), 100)

    def test_every_failed_check_has_a_stem(self):
        """Every check a unit test made fail is one the reading found."""
        self.assertEqual(self.cov.unmatched, {})

    def test_unit_tests_pass(self):
        """Coverage counts passing unit tests only: all must pass."""
        self.assertEqual(self.cov.not_passing, [])

    def test_every_stem_fails_in_some_unit_test(self):
        missing = [s for s in self.cov.uncovered() if s not in CANNOT_FAIL]
        self.assertEqual(missing, [], "checks no unit test makes fail: %s (see "
                         "tests/check-coverage.md, python3 tests/check_coverage.py)"
                         % ", ".join(missing))

    def test_cannot_fail_list_is_true(self):
        for stem in CANNOT_FAIL:
            self.assertIn(stem, self.cov.stems, "no check %s any more" % stem)
            self.assertEqual(self.cov.by_stem[stem], [], "%s does fail" % stem)

    def test_emitted_names_have_stems(self):
        """Every check name the lab emits when it evaluates the recorded
        crash runs (tests/data) is one of the stems: the reading misses no
        check that a real run produces."""
        sys.path.insert(0, os.path.join(check_coverage.TOP, "lab"))
        import scenarios as SC
        import vmcore
        from test_lab import IMAGE, recorded
        names = set()
        for sample, name in (("results-crash-plain-512M.txt", "crash-plain-512M"),
                             ("results-crash-fulldump-1G.txt", "crash-fulldump-1G")):
            if name not in SC.SCENARIOS:
                continue
            res = recorded(sample)
            res.analysis = {"kdump": vmcore.Analysis(error="not analysed: unit test")}
            names |= {n for n, _, _ in SC.evaluate(name, {name: res}, image_size=IMAGE).results}
        self.assertGreater(len(names), 10)
        self.assertEqual(sorted(n for n in names
                                if not check_coverage.stems_of(n, self.cov.stems)), [])


class Reader(unittest.TestCase):
    """The static reading of names, on small sources."""

    def stems(self, code):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".py") as f:
            f.write(code)
            f.flush()
            return check_coverage.enumerate_stems([f.name])

    def test_forms(self):
        stems, errors = self.stems(
            "def f(c, m, sfx=''):\n"
            "    c.check('plain', 1)\n"
            "    c.eq('a_%s_b' % m.x, 1, 1)\n"
            "    c.check('with' + sfx, 1)\n"
            "    for k in ('x', 'y'):\n"
            "        c.check('same_%s' % k, 1)\n"
            "    c.check('sees_%s' % ('blocks' if m else 'no_blocks'), 1)\n"
            "    n = 0\n"
            "    s = '' if m else '_%d' % (n + 1)\n"
            "    c.check('run%s_ok' % s, 1)\n"
            "    c.check(m.name, 1)\n"
            "def g(c, m):\n"
            "    f(c, m, '_after')\n"
            "    f(c, m)\n")
        self.assertEqual(sorted(stems), sorted([
            "a_{}_b", "plain", "run_{n}_ok", "run_ok", "same_x", "same_y", "sees_blocks",
            "sees_no_blocks", "with", "with_after"]))
        self.assertEqual(len(errors), 1)
        self.assertIn("m.name", errors[0])

    def test_most_specific_stem(self):
        stems = ["{}_rc", "{}_{n}_rc", "shrink_rc", "selftest_{}_{}", "selftest_{n}_{}_{}"]
        self.assertEqual(check_coverage.stems_of("load-c_rc", stems), ["{}_rc"])
        self.assertEqual(check_coverage.stems_of("load-c_2_rc", stems), ["{}_{n}_rc"])
        self.assertEqual(check_coverage.stems_of("shrink_rc", stems), ["shrink_rc"])
        self.assertEqual(check_coverage.stems_of("selftest_protect_after_load_ok", stems),
                         ["selftest_{}_{}"])
        self.assertEqual(check_coverage.stems_of("selftest_2_protect_after_load_ok", stems),
                         ["selftest_{n}_{}_{}"])

    def test_the_run_does_not_run_itself(self):
        self.assertNotIn(check_coverage.SELF, [m for m, _ in check_coverage.unit_modules()])
        with self.assertRaises(ValueError):
            check_coverage.record(check_coverage.SELF, "6.1")


if __name__ == "__main__":
    unittest.main()
