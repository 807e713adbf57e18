#!/usr/bin/env python3
"""Which check can a unit test make fail?  (python3 tests/check_coverage.py)

1. Reads lab/*.py and tests/run_tests.py (without running them) for every
   Checker.check(NAME, ...) and Checker.eq(NAME, ...) call and turns NAME
   into the check-name stems it can be: a literal as it is; a formatted
   name with each part that only the run knows as "{}"
   ("segments_invalid_after_%s" % sfx -> segments_invalid_after_{}).
   What is known statically is followed: both branches of a conditional,
   a loop over a literal tuple, a local assigned in the function, and a
   parameter through every call of its function (so that
   check_crash_page_mapped(c, m, "_after_shrink") gives the stems
   crash_in_block_is_zero and crash_in_block_is_zero_after_shrink).
   A call whose name is wholly unknown is printed as an error, unless
   INDIRECT says where its names come from.
2. Runs the unit test modules of run_tests.UNIT_MODULES (but not
   test_check_coverage: no recursion), each in a process of its own with
   the KERNEL it is registered with, with Checker.check wrapped to record,
   per unit test, the names of the checks that failed (ok false).  Only
   unit tests that pass count.
3. Maps each failed name to its stem (the most specific one that matches:
   the one with the most literal characters) and writes
   tests/check-coverage.md: every stem with the unit tests that make it
   fail, the stems none makes fail, and the checks that cannot fail on
   their own (test_check_coverage.CANNOT_FAIL, with the reasons).

Exit status 0 only if every call was read and every stem but those of
CANNOT_FAIL is made to fail by a passing unit test.
"""

import ast
import glob
import itertools
import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
LAB = os.path.join(TOP, "lab")
REPORT = os.path.join(HERE, "check-coverage.md")
SELF = "test_check_coverage"     # never run by the coverage run
PH = "{}"                        # what a part only the run knows becomes
NUM = "{n}"                      # ... when it is a number ("_%d" % (n + 1))
CHILD_ENV = "LAB_CHECK_COVERAGE_CHILD"

# Calls whose name argument is not an expression but a value handed over
# from elsewhere: (file, function, argument) -> (file, function), the
# function whose `checks.append((NAME, ok, detail))` tuples are those names.
INDIRECT = {
    # check_one_analysis re-emits the transfer checks of vmcore.extract()
    # (Analysis.transfer) with c.check(what, ok, detail).
    ("lab/checks.py", "check_one_analysis", "what"): ("lab/vmcore.py", "extract"),
}


# The Checker's own forwarding (eq calls check with its NAME): not a check.
FORWARDERS = {("lab/checks.py", "eq")}


def sources():
    """The files whose .check/.eq calls are the lab's checks."""
    return sorted(glob.glob(os.path.join(LAB, "*.py"))) + [os.path.join(HERE, "run_tests.py")]


def rel(path):
    return os.path.relpath(path, TOP)


# ---------------------------------------------------------------------------
# 1. The stems, read from the source.
# ---------------------------------------------------------------------------

@dataclass
class Func:
    path: str
    node: ast.FunctionDef

    @property
    def name(self):
        return self.node.name


class Source:
    """Every function of the scanned files, and the calls between them."""

    def __init__(self, paths):
        self.funcs = {}     # name -> [Func]
        self.trees = {}
        for p in paths:
            with open(p) as f:
                tree = ast.parse(f.read(), p)
            self.trees[p] = tree
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.funcs.setdefault(node.name, []).append(Func(p, node))

    def calls_of(self, name):
        """[(Func, ast.Call)] of every call of function NAME (plain or as
        an attribute, C.check_shrink) inside a scanned function."""
        out = []
        for fns in self.funcs.values():
            for fn in fns:
                for node in ast.walk(fn.node):
                    if isinstance(node, ast.Call):
                        f = node.func
                        called = f.id if isinstance(f, ast.Name) else (
                            f.attr if isinstance(f, ast.Attribute) else None)
                        if called == name:
                            out.append((fn, node))
        return out


def literal_chars(pattern):
    return len(pattern.replace(PH, "").replace(NUM, ""))


def tidy(pattern):
    """Adjacent unknown parts are one unknown part."""
    while True:
        new = re.sub(r"\{n?\}\{n?\}", lambda m: NUM if m.group(0) == NUM + NUM else PH,
                     pattern)
        if new == pattern:
            return pattern
        pattern = new


_PCT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\*|\d+)?(?:\.\d+)?[diouxXeEfFgGcrsa%]")


class Reader:
    """Turns a name expression into the set of patterns it can be."""

    MAX_DEPTH = 6

    def __init__(self, src):
        self.src = src

    def patterns(self, node, fn, depth=0):
        if isinstance(node, ast.Constant):
            return {str(node.value)}
        if isinstance(node, ast.JoinedStr):
            parts = [{v.value} if isinstance(v, ast.Constant) else self.patterns(v.value, fn, depth)
                     for v in node.values]
            return self.product(parts)
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            if any(isinstance(x, ast.Constant) and not isinstance(x.value, str)
                   for x in (node.left, node.right)):
                return {NUM}    # arithmetic: n + 1
            return self.product([self.patterns(node.left, fn, depth),
                                 self.patterns(node.right, fn, depth)])
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod):
            fmts = self.patterns(node.left, fn, depth)
            args = node.right.elts if isinstance(node.right, ast.Tuple) else [node.right]
            argsets = [self.patterns(a, fn, depth) for a in args]
            out = set()
            for f in fmts:
                out |= self.percent(f, argsets)
            return out
        if isinstance(node, ast.IfExp):
            return self.patterns(node.body, fn, depth) | self.patterns(node.orelse, fn, depth)
        if isinstance(node, ast.Name) and fn is not None:
            return self.name(node.id, node, fn, depth)
        return {PH}

    @staticmethod
    def product(parts):
        return {tidy("".join(p)) for p in itertools.product(*[sorted(s) for s in parts])}

    @staticmethod
    def percent(fmt, argsets):
        """FMT % ARGSETS, each conversion replaced by its argument's patterns."""
        parts, i, pos = [], 0, 0
        for m in _PCT.finditer(fmt):
            parts.append({fmt[pos:m.start()]})
            pos = m.end()
            if m.group(0) == "%%":
                parts.append({"%"})
                continue
            arg = argsets[i] if i < len(argsets) else {PH}
            if m.group(0)[-1] in "diouxX" and arg <= {PH, NUM}:
                arg = {NUM}     # a number, whatever it is
            parts.append(arg)
            i += 1
        parts.append({fmt[pos:]})
        return Reader.product(parts)

    def name(self, ident, at, fn, depth):
        """The patterns of local name IDENT used at node AT in FN."""
        if depth > self.MAX_DEPTH:
            return {PH}
        out = set()
        found = False
        # A loop variable: over a literal tuple/list, or a list built of literals.
        for node in ast.walk(fn.node):
            if isinstance(node, (ast.For, ast.comprehension)):
                idx = self.target_index(node.target, ident)
                if idx is None:
                    continue
                found = True
                elts = self.elements(node.iter, fn)
                if elts is None:
                    out.add(PH)
                    continue
                for e in elts:
                    if idx == -1:
                        out |= self.patterns(e, fn, depth + 1)
                    elif isinstance(e, ast.Tuple) and idx < len(e.elts):
                        out |= self.patterns(e.elts[idx], fn, depth + 1)
                    else:
                        out.add(PH)
            elif isinstance(node, ast.Assign):
                for t in node.targets:
                    if isinstance(t, ast.Name) and t.id == ident:
                        found = True
                        out |= self.patterns(node.value, fn, depth + 1)
                    elif isinstance(t, ast.Tuple) and self.target_index(t, ident) is not None:
                        found = True
                        out.add(PH)
            elif isinstance(node, (ast.AugAssign, ast.AnnAssign)) and \
                    isinstance(node.target, ast.Name) and node.target.id == ident:
                found = True
                out.add(PH)
        if found:
            return out
        # A parameter: what every call of FN passes for it.
        args = fn.node.args
        params = [a.arg for a in args.posonlyargs + args.args]
        if ident in params:
            i = params.index(ident)
            defaults = args.defaults
            first_default = len(params) - len(defaults)
            default = defaults[i - first_default] if i >= first_default else None
            calls = self.src.calls_of(fn.name)
            if not calls:
                return self.patterns(default, None, depth + 1) if default is not None else {PH}
            for caller, call in calls:
                arg = None
                if i < len(call.args) and not any(isinstance(a, ast.Starred) for a in call.args):
                    arg = call.args[i]
                for kw in call.keywords:
                    if kw.arg == ident:
                        arg = kw.value
                if arg is None and any(kw.arg is None for kw in call.keywords):
                    out.add(PH)     # **kwargs
                elif arg is None:
                    out |= self.patterns(default, None, depth + 1) if default is not None else {PH}
                else:
                    out |= self.patterns(arg, caller, depth + 1)
            return out
        return {PH}

    @staticmethod
    def target_index(target, ident):
        """-1 if TARGET is IDENT, its position if TARGET is a tuple holding
        it, else None."""
        if isinstance(target, ast.Name):
            return -1 if target.id == ident else None
        if isinstance(target, ast.Tuple):
            for i, t in enumerate(target.elts):
                if isinstance(t, ast.Name) and t.id == ident:
                    return i
        return None

    def elements(self, node, fn):
        """The element expressions of an iterable: a literal tuple/list, or
        a local list assigned a literal and grown by .append(literal)."""
        if isinstance(node, (ast.Tuple, ast.List)):
            return list(node.elts)
        if isinstance(node, ast.Name):
            elts = []
            for n in ast.walk(fn.node):
                if isinstance(n, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == node.id for t in n.targets):
                    if not isinstance(n.value, (ast.Tuple, ast.List)):
                        return None
                    elts += n.value.elts
                elif isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute) and \
                        isinstance(n.func.value, ast.Name) and n.func.value.id == node.id:
                    if n.func.attr != "append" or len(n.args) != 1:
                        return None
                    elts.append(n.args[0])
            return elts or None
        return None


@dataclass
class Site:
    path: str
    line: int
    func: str
    end: int = 0        # the call's last line

    def __str__(self):
        return "%s:%d (%s)" % (rel(self.path), self.line, self.func)


def enumerate_stems(paths=None):
    """({stem: [Site]}, [error]) of every .check(NAME, ...) / .eq(NAME, ...)
    call in PATHS (default: sources())."""
    paths = paths or sources()
    src = Source(paths)
    reader = Reader(src)
    stems, errors = {}, []
    for path in paths:
        by_node = {fn.node: fn for fns in src.funcs.values() for fn in fns if fn.path == path}
        for node, fn in walk_owned(src.trees[path], None, by_node):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ("check", "eq")):
                continue
            site = Site(path, node.lineno, fn.name if fn else "<module>", node.end_lineno)
            if (rel(path), site.func) in FORWARDERS:
                continue
            if not node.args:
                errors.append("%s: .%s() without a name argument" % (site, node.func.attr))
                continue
            arg = node.args[0]
            key = (rel(path), site.func, arg.id if isinstance(arg, ast.Name) else None)
            if key in INDIRECT:
                got = indirect_patterns(src, reader, *INDIRECT[key])
                if not got:
                    errors.append("%s: INDIRECT names from %s found none" % (site, INDIRECT[key]))
            else:
                got = reader.patterns(arg, fn)
            if not got or any(not literal_chars(p) for p in got):
                errors.append("%s: cannot read the check name %s"
                              % (site, ast.unparse(arg)))
                got = {p for p in got if literal_chars(p)}
            for p in got:
                stems.setdefault(p, []).append(site)
    return stems, errors


def walk_owned(node, fn, by_node):
    """(node, the innermost function holding it) for every node under NODE."""
    for child in ast.iter_child_nodes(node):
        inner = by_node.get(child, fn)
        yield child, fn
        yield from walk_owned(child, inner, by_node)


def indirect_patterns(src, reader, path, func):
    """The first elements of the tuples FUNC in PATH appends to a list
    (checks.append((NAME, ok, detail)))."""
    out = set()
    for fn in src.funcs.get(func, []):
        if rel(fn.path) != path:
            continue
        for node in ast.walk(fn.node):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr == "append" and len(node.args) == 1 and \
                    isinstance(node.args[0], ast.Tuple) and len(node.args[0].elts) == 3:
                out |= reader.patterns(node.args[0].elts[0], fn)
    return out


def stem_regex(stem):
    parts = re.split(r"(\{n?\})", stem)
    return re.compile("^" + "".join(
        ".+" if p == PH else r"\d+" if p == NUM else re.escape(p) for p in parts) + "$")


def stems_of(name, stems):
    """The most specific of STEMS (most literal characters) that NAME matches."""
    hits = [s for s in stems if stem_regex(s).match(name)]
    if not hits:
        return []
    best = max(literal_chars(s) for s in hits)
    return sorted(s for s in hits if literal_chars(s) == best)


# ---------------------------------------------------------------------------
# 2. The unit tests, with the failing checks recorded.
# ---------------------------------------------------------------------------

def unit_modules():
    """[(module, kernel)] of run_tests.UNIT_MODULES (read, not imported),
    without test_check_coverage."""
    with open(os.path.join(HERE, "run_tests.py")) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "UNIT_MODULES" for t in node.targets):
            return [(m, k) for m, k in ast.literal_eval(node.value) if m != SELF]
    raise RuntimeError("tests/run_tests.py has no UNIT_MODULES")


_RECORDER = r"""
import json, sys, unittest
here, module = sys.argv[1], sys.argv[2]
sys.path.insert(0, here)
sys.path.insert(0, __import__("os").path.join(here, "..", "lab"))
import checks

current = [None]
failed = {}
orig = checks.Checker.check
forwarders = {checks.Checker.eq.__code__}

def check(self, name, ok, detail=""):
    if not ok and current[0] is not None:
        # The call site: the first caller that is not Checker.eq.
        f = sys._getframe(1)
        while f.f_code in forwarders:
            f = f.f_back
        failed.setdefault(current[0], []).append((name, f.f_code.co_filename, f.f_lineno))
    return orig(self, name, ok, detail)

checks.Checker.check = check

class Result(unittest.TestResult):
    def startTest(self, test):
        current[0] = test.id()
        super().startTest(test)

    def stopTest(self, test):
        super().stopTest(test)
        current[0] = None

suite = unittest.defaultTestLoader.loadTestsFromName(module)

def tests(s):
    for t in s:
        if hasattr(t, "__iter__"):
            yield from tests(t)
        else:
            yield t

ids = [t.id() for t in tests(suite)]
res = Result()
suite.run(res)
bad = {t.id() for t, _ in res.failures + res.errors + res.skipped + res.expectedFailures}
bad |= {t.id() for t in res.unexpectedSuccesses}
print(json.dumps({i: {"passed": i not in bad, "failed": failed.get(i, [])} for i in ids}))
"""


def record(module, kernel):
    """{test id: {"passed": bool, "failed": [(check name, file, line)]}} of
    tests/MODULE.py run with KERNEL=KERNEL."""
    if module == SELF:
        raise ValueError("the coverage run does not run itself")
    p = subprocess.run([sys.executable, "-c", _RECORDER, HERE, module], capture_output=True,
                       text=True, cwd=HERE,
                       env=dict(os.environ, KERNEL=kernel, **{CHILD_ENV: "1"}))
    try:
        return json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise RuntimeError("%s (KERNEL=%s) did not run: exit %d: %s"
                           % (module, kernel, p.returncode, (p.stderr or p.stdout)[-800:]))


# ---------------------------------------------------------------------------
# 3. The map from stems to unit tests.
# ---------------------------------------------------------------------------

@dataclass
class Coverage:
    stems: dict                 # stem -> [Site]
    errors: list                # calls whose name could not be read
    runs: list                  # [(module, kernel, {test id: ...})]
    by_stem: dict               # stem -> sorted [test id]
    unmatched: dict             # failed name no stem matches -> [test id]
    not_passing: list           # unit tests that did not pass

    def uncovered(self):
        return sorted(s for s in self.stems if not self.by_stem.get(s))


def coverage():
    stems, errors = enumerate_stems()
    at = {}     # (file, line) -> stems of the call there
    for stem, sites in stems.items():
        for x in sites:
            for line in range(x.line, max(x.line, x.end) + 1):
                at.setdefault((os.path.realpath(x.path), line), set()).add(stem)
    runs = [(m, k, record(m, k)) for m, k in unit_modules()]
    by_stem = {s: set() for s in stems}
    unmatched, not_passing = {}, []
    for _, _, tests in runs:
        for tid, t in sorted(tests.items()):
            if not t["passed"]:
                not_passing.append(tid)
                continue
            for name, path, line in {tuple(x) for x in t["failed"]}:
                # The stems of the call that failed; any stem for a call
                # outside the scanned files (a unit test's own).
                hits = stems_of(name, at.get((os.path.realpath(path), line), stems))
                if not hits:
                    unmatched.setdefault(name, []).append(tid)
                for s in hits:
                    by_stem[s].add(tid)
    return Coverage(stems, errors, runs, {s: sorted(t) for s, t in by_stem.items()},
                    unmatched, not_passing)


def cannot_fail():
    """test_check_coverage.CANNOT_FAIL: {stem: why}."""
    sys.path.insert(0, HERE)
    import test_check_coverage
    return dict(test_check_coverage.CANNOT_FAIL)


def markdown(cov, excluded, show=4):
    out = ["# Which unit test makes each check fail", "",
           "Generated by `python3 tests/check_coverage.py`; do not edit.  The check names",
           "are read from every `.check(` / `.eq(` call in `lab/*.py` and",
           "`tests/run_tests.py`; `{}` stands for the part of a name only the run knows",
           "(the load step, the dump), `{n}` for a number (the second load of a kind:",
           "`load-c_2`).  A unit test counts when it passes and a check of that stem",
           "failed (ok false) at that call while it ran.", "",
           "Unit test runs: " + ", ".join("`%s` (KERNEL=%s, %d tests)" % (m, k, len(t))
                                           for m, k, t in cov.runs) + ".", "",
           "%d stems; %d made to fail by a unit test; %d cannot fail on their own; "
           "%d made to fail by none." % (
               len(cov.stems), sum(1 for s in cov.stems if cov.by_stem[s]),
               sum(1 for s in cov.stems if s in excluded),
               len([s for s in cov.uncovered() if s not in excluded])), ""]
    if cov.errors:
        out += ["## Calls whose check name could not be read", ""]
        out += ["- " + e for e in cov.errors] + [""]
    out += ["## Stems and the unit tests that make them fail", "",
            "| check name stem | unit test(s) that make it fail | emitted at |",
            "|---|---|---|"]
    for s in sorted(cov.stems):
        tests = cov.by_stem[s]
        cell = ", ".join("`%s`" % t for t in tests[:show])
        if len(tests) > show:
            cell += " (+%d more)" % (len(tests) - show)
        if not tests:
            cell = "cannot fail on its own" if s in excluded else "**none**"
        sites = ", ".join("%s:%d" % (rel(x.path), x.line) for x in cov.stems[s])
        out.append("| `%s` | %s | %s |" % (s, cell, sites))
    out += ["", "## Stems no unit test makes fail", ""]
    missing = [s for s in cov.uncovered() if s not in excluded]
    out += ["- `%s`" % s for s in missing] or ["None."]
    out += ["", "## Checks that cannot fail on their own", "",
            "Excluded, with the reason, by `CANNOT_FAIL` in `tests/test_check_coverage.py`.", ""]
    out += ["- `%s`: %s" % (s, why) for s, why in sorted(excluded.items())] or ["None."]
    if cov.unmatched:
        out += ["", "## Failed check names that match no stem", ""]
        out += ["- `%s` (%s)" % (n, ", ".join(t)) for n, t in sorted(cov.unmatched.items())]
    if cov.not_passing:
        out += ["", "## Unit tests that did not pass (not counted)", ""]
        out += ["- `%s`" % t for t in cov.not_passing]
    return "\n".join(out) + "\n"


def main():
    cov = coverage()
    excluded = cannot_fail()
    for e in cov.errors:
        print("error: %s" % e, file=sys.stderr)
    for n, tests in sorted(cov.unmatched.items()):
        print("error: failed check %r (in %s) matches no stem" % (n, tests[0]), file=sys.stderr)
    for t in cov.not_passing:
        print("warning: unit test %s did not pass: not counted" % t, file=sys.stderr)
    with open(REPORT, "w") as f:
        f.write(markdown(cov, excluded))
    missing = [s for s in cov.uncovered() if s not in excluded]
    wrongly = sorted(s for s in excluded if cov.by_stem.get(s))
    stale = sorted(s for s in excluded if s not in cov.stems)
    for s in missing:
        print("uncovered: %s (%s)" % (s, ", ".join(str(x) for x in cov.stems[s])))
    for s in wrongly:
        print("error: %s is in CANNOT_FAIL but %s makes it fail" % (s, cov.by_stem[s][0]))
    for s in stale:
        print("error: %s is in CANNOT_FAIL but no check has that name" % s)
    print("%d stems, %d made to fail by a unit test, %d cannot fail on their own, "
          "%d uncovered; wrote %s" % (len(cov.stems), len(cov.stems) - len(cov.uncovered()),
                                      len(excluded), len(missing), rel(REPORT)))
    return 0 if not (cov.errors or cov.unmatched or missing or wrongly or stale) else 1


if __name__ == "__main__":
    sys.exit(main())
