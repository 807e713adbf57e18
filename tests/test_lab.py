"""Unit tests of the host side: the result-channel parser and the checks,
on a recorded result file.  They run in milliseconds, without QEMU."""

import os
import unittest

import scenarios as S
from scenarios import lab

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def recorded(name):
    with open(os.path.join(DATA, name)) as f:
        recs = lab.parse_records(f.read())
    return lab.Result(name, lab.outcome_of(recs), recs, "console.log", 0.0)


class ParseRecords(unittest.TestCase):
    def test_fields(self):
        r = lab.parse_records("3:load-c:rc=0\n0:boot:klog=a=b c\n")
        self.assertEqual((r[0].idx, r[0].step, r[0].key, r[0].value), (3, "load-c", "rc", "0"))
        self.assertEqual(r[1].value, "a=b c")

    def test_noise_is_ignored(self):
        r = lab.parse_records("[    1.0] kernel noise\n\n1:x:y=z\r\ngarbage:=\n")
        self.assertEqual([(x.step, x.key, x.value) for x in r], [("x", "y", "z")])

    def test_no_result_without_done(self):
        self.assertEqual(lab.outcome_of(lab.parse_records("0:boot:a=1\n")), lab.NO_RESULT)
        self.assertEqual(lab.outcome_of([]), lab.NO_RESULT)

    def test_sizes(self):
        self.assertEqual(lab.parse_size("512M"), 512 << 20)
        self.assertEqual(lab.parse_size("8G"), 8 << 30)
        self.assertRaises(ValueError, lab.parse_size, "8X")


class RecordedCrashRun(unittest.TestCase):
    def setUp(self):
        self.r = recorded("results-crash-plain-512M.txt")

    def test_outcome_and_regions(self):
        self.assertEqual(self.r.outcome, lab.DONE)
        self.assertEqual(S.regions(self.r), [(0xe0000000, 0x100000000)])

    def test_map_figures(self):
        m = self.r.map("boot")
        self.assertEqual(m["crash_in_block"], 0)
        self.assertEqual(m["crash_bytes"], 512 << 20)
        self.assertEqual(m["crash_region"], ["0xe0000000-0x100000000"])

    def test_capture_checks_pass(self):
        c = S.Checker("t", "series")
        S.check_capture(c, self.r)
        self.assertTrue(c.results)
        self.assertEqual([n for n, ok, _ in c.results if not ok], [])

    def test_capture_checks_can_fail(self):
        recs = [x for x in self.r.records if x.key != "marker_found"]
        c = S.Checker("t", "series")
        S.check_capture(c, lab.Result("t", lab.DONE, recs, "", 0.0))
        self.assertIn("vmcore_dmesg_has_marker", [n for n, ok, _ in c.results if not ok])

    def test_shape_against_itself_and_a_worse_map(self):
        c = S.Checker("t", "series")
        S.check_shape(c, self.r, self.r, 512 << 20)
        self.assertEqual([n for n, ok, _ in c.results if not ok], [])
        worse = [lab.Record(x.idx, x.step, x.key, "99999999" if x.key == "map.pte_outside_crash"
                            else x.value) for x in self.r.records]
        c = S.Checker("t", "series")
        S.check_shape(c, lab.Result("w", lab.DONE, worse, "", 0.0), self.r, 512 << 20)
        self.assertEqual([n for n, ok, _ in c.results if not ok], ["pte_outside_crash_equals_control"])


if __name__ == "__main__":
    unittest.main()
