"""The lab's scenarios and what each must show.

A scenario boots one guest (lab.run_guest) with a kernel command line and
a list of steps for its /init; evaluate() then turns its records into named
checks (lab/checks.py).  What is checked follows from the steps, so that
no step goes unchecked: every load-c/load-s gets the protection checks
(and the unload after it the reverse), every crash the capture checks,
every selftest run the kselftest's TAP, every shrink the shrink checks.
The one thing a scenario states is how its linear map must look ("shape"):

    control  no crash region, blocks in the linear map
    shape    against the control boot (on base: the positive fact that it
             page-maps all of RAM)
    nothing  nothing reserved: the very same map as the control boot
    forced   an option page-maps everything (rodata=full, debug_pagealloc)
"""

import os

import checks as C
import lab
import variants
import vmcore

MIB, GIB = C.MIB, C.GIB
G4 = 4 * GIB
TOP48 = 1 << 48
LOAD_UNLOAD = ["load-c", "unload", "load-s", "unload", "selftest"]

# The kselftest's tests (tools/testing/selftests/arm64/kdump).
ST_MAPPED = "crash_regions_mapped_apart"
ST_MEMTYPE = "crash_memory_type_as_around"
ST_LIMIT = "pte_outside_crash_within_limit"
ST_LOAD = "protect_after_load"
ST_UNLOAD = "unprotect_after_unload"
ST_SHRINK = "shrink_returns_memory"


def sc(variant="series", mem="8G", cmdline="", steps=(), shape=None, regions=None,
       log=None, control=None, firmware="dt", dma_bits=None, rodata=variants.LINE["rodata"],
       invalid_elsewhere=False, selftest=None, fulldump=False, lost=False, timeout=None,
       cpu="max"):
    """A scenario.  regions: the crash regions expected in /proc/iomem, as
    (size, lowest start, highest end); log: a substring the kernel log must
    have; control: the scenario whose boot is this one's control;
    firmware: "dt" (QEMU's device tree) or "uefi" (QEMU_EFI.fd, ACPI);
    dma_bits: boot with a device tree whose dma-ranges limit DMA to that;
    invalid_elsewhere: debug_pagealloc unmaps free pages and KFENCE its
    guard pages (see checks.check_loads); selftest: {test: outcome}
    overriding the expected kselftest outcomes (see selftest_expect);
    fulldump: the capture also exports the ELF /proc/vmcore, and a
    "pattern:MIB" step's range is the rebuilt slot (lab.slot); lost: the
    capture must fail (a stray write corrupted the capture kernel), so the
    guest must end without its final record; timeout: seconds, at most
    the runner's own; cpu: QEMU's -cpu ("max,lpa2=off": an LPA2 kernel
    folds a level at run time)."""
    if fulldump:
        cmdline += " lab.fulldump=1 lab.slot=%d" % variants.split_slot_size(variant)
    return dict(variant=variant, mem=mem, cmdline=("rodata=%s " % rodata + cmdline).strip(),
                steps=list(steps), shape=shape, regions=regions, log=log, control=control,
                firmware=firmware, dma_bits=dma_bits, invalid_elsewhere=invalid_elsewhere,
                selftest=selftest or {}, fulldump=fulldump, lost=lost, timeout=timeout,
                cpu=cpu)


def bad_input():
    """Bad crashkernel= input: nothing reserved, nothing mapped apart, and
    the kernel's own message where it gives one (variants.KERNELS
    bad_log: the generic reservation of 6.9 on, or 6.1's own)."""
    say = variants.LINE["bad_log"]
    return {
        "bad-garbage": sc(cmdline="crashkernel=foo", shape="nothing", log=say["garbage"]),
        "bad-too-large": sc(cmdline="crashkernel=64G", shape="nothing", log=say["too-large"]),
        "bad-unaligned-base": sc(cmdline="crashkernel=256M@0x60100000", shape="nothing",
                                 log=say["unaligned-base"]),
        "bad-base-beyond-ram": sc(cmdline="crashkernel=256M@0x400000000", shape="nothing",
                                  log=say["base-beyond-ram"]),
        "bad-low-alone": sc(cmdline="crashkernel=128M,low", shape="nothing"),
    }


def stray_writes():
    """A stray write over the main crash region through the linear map
    (/dev/mem), with the capture kernel loaded, then a crash, on both load
    paths.  The series faults and captures; the unpatched kernel since
    6.4 (6.12, 7.3) lets it through and loses the capture, which its
    controls, the same boots and crashes without the write, do not; the
    unpatched 6.1 protects the loaded segments and captures."""
    r256 = [(256 * MIB, 0, G4)]
    lost = not variants.LINE["protects"]
    out = {}
    for how, sfx in (("load-c", ""), ("load-s", "-s")):
        out["stray-write" + sfx] = sc(mem="2G", cmdline="crashkernel=256M",
                                      steps=[how, "stray", "crash"], regions=r256)
        out["base-stray-write" + sfx] = sc("base", mem="2G", cmdline="crashkernel=256M",
                                           steps=[how, "stray", "crash"], regions=r256,
                                           lost=lost, timeout=150 if lost else None,
                                           control=("base-crash-2G-256M" + sfx) if lost
                                           else None)
        out["base-crash-2G-256M" + sfx] = sc("base", mem="2G", cmdline="crashkernel=256M",
                                             steps=[how, "crash"], regions=r256)
    return out


# What the series logs for each crash region it maps apart at boot.
APART = "mapped apart from the linear map"


def scenarios_apart():
    """Every kernel line: mainline and the mainline series, 6.12 and 6.1
    and their backports.  The line's rodata= (variants.KERNELS: noalias
    on 7.3, on before) keeps the linear map in blocks, and its
    rodata_pages (on on 7.3, where it now means full; full before)
    page-maps it.  The series maps the crash regions apart at boot and
    protects them whole; the unpatched kernel since 6.4 keeps them inside
    its blocks and protects nothing, the unpatched 6.1 page-maps all of
    RAM and protects the loaded segments."""
    low = (128 * MIB, 0, G4)
    hi1 = (GIB, G4, TOP48)
    high_alone = high_regions()
    r512 = [(512 * MIB, 0, G4)]
    fixed = [(256 * MIB, 0x60000000, 0x70000000)]
    apart = APART
    pages = variants.LINE["rodata_pages"]
    out = {
        "control": sc(steps=["selftest"], shape="control"),
        "base-control": sc("base", shape="control"),
        "plain-512M": sc(cmdline="crashkernel=512M", steps=LOAD_UNLOAD, shape="shape",
                         regions=r512, log=apart),
        # crashkernel=,high gets a 128 MiB low region by default (not on
        # 6.1); every region is mapped apart and protected.
        "high-1G": sc(cmdline="crashkernel=1G,high", steps=LOAD_UNLOAD, shape="shape",
                      regions=high_alone, log=apart),
        "fixed-256M@0x60000000": sc(cmdline="crashkernel=256M@0x60000000", steps=LOAD_UNLOAD,
                                    shape="shape", regions=fixed, log=apart),
        "shrink-64M": sc(cmdline="crashkernel=512M", steps=["shrink:67108864", "load-c", "unload"],
                         regions=r512),
        # The kselftest's own shrink test (KDUMP_SHRINK=1, 64M given back),
        # then a load that must still be protected whole.
        "selftest-shrink": sc(cmdline="crashkernel=512M",
                              steps=["selftest:shrink", "load-c", "unload"], regions=r512,
                              selftest={ST_SHRINK: "ok"}),
        **shrink_two_regions(hi1),
        "crash-plain-512M": sc(cmdline="crashkernel=512M", steps=["load-c", "crash"],
                               regions=r512),
        "crash-high-low": sc(cmdline="crashkernel=1G,high crashkernel=128M,low",
                             steps=["load-s", "crash"], regions=[low, hi1]),
        "crash-fixed": sc(cmdline="crashkernel=256M@0x60000000", steps=["load-c", "crash"],
                          regions=fixed),
        # A small guest whose whole ELF /proc/vmcore leaves it too: a
        # pattern that names its own physical addresses, written around
        # the region (the 1G slot its edges may split), is read back from
        # the unfiltered dump with crash.
        "crash-fulldump-1G": sc(mem="1G", cmdline="crashkernel=256M",
                                steps=["pattern:64", "load-c", "crash"],
                                regions=[(256 * MIB, 0, G4)], fulldump=True),
        # rodata=full (rodata=on on mainline, its default) and
        # debug_pagealloc: the linear map is pages; protection needs
        # nothing more.
        "rodata-" + pages: sc(cmdline="crashkernel=512M", rodata=pages,
                        steps=["load-c", "unload", "selftest", "load-s", "crash"],
                        shape="forced", regions=r512),
        "debug-pagealloc": sc(cmdline="crashkernel=512M debug_pagealloc=on",
                              steps=["load-c", "unload", "selftest", "load-c", "crash"],
                              shape="forced", regions=r512, invalid_elsewhere=True),
        **stray_writes(),
        # A DMA zone that ends below 4 GiB, and UEFI + ACPI.
        "control-dma31": sc(dma_bits=31, shape="control"),
        "plain-256M-dma31": sc(dma_bits=31, cmdline="crashkernel=256M",
                               steps=["load-c", "unload", "load-s", "crash"], shape="shape",
                               regions=[(256 * MIB, 0, 0x80000000)], control="control-dma31",
                               log=apart),
        "control-uefi": sc(firmware="uefi", shape="control"),
        "plain-512M-uefi": sc(firmware="uefi", cmdline="crashkernel=512M",
                              steps=["load-c", "unload", "load-s", "crash"], shape="shape",
                              regions=r512, control="control-uefi", log=apart),
        "high-low-uefi": sc(firmware="uefi", cmdline="crashkernel=1G,high crashkernel=128M,low",
                            steps=["load-c", "unload", "load-s", "crash"], shape="shape",
                            regions=[low, hi1], control="control-uefi", log=apart),
        "crash-fixed-uefi": sc(firmware="uefi", cmdline="crashkernel=256M@0x60000000",
                               steps=["load-s", "crash"], regions=fixed),
        # Bad input: nothing reserved, and nothing mapped apart.
        **bad_input(),
        # The unpatched kernel: the regions inside its blocks, nothing
        # protected with either rodata=, and its kselftest says so (skips).
        "base-plain-512M": sc("base", cmdline="crashkernel=512M",
                              steps=["load-c", "unload", "load-s", "unload", "selftest"],
                              shape="shape", regions=r512),
        "base-rodata-" + pages: sc("base", cmdline="crashkernel=512M", rodata=pages,
                             steps=["load-c", "unload", "load-s", "unload", "selftest"],
                             shape="forced", regions=r512),
        "base-crash-plain-512M": sc("base", cmdline="crashkernel=512M",
                                    steps=["load-c", "crash"], regions=r512),
        "base-crash-high-low": sc("base", cmdline="crashkernel=1G,high crashkernel=128M,low",
                                  steps=["load-s", "crash"], regions=[low, hi1]),
        "base-crash-fulldump-1G": sc("base", mem="1G", cmdline="crashkernel=256M",
                                     steps=["pattern:64", "load-c", "crash"],
                                     regions=[(256 * MIB, 0, G4)], fulldump=True),
    }
    return out


def high_regions():
    """The regions crashkernel=1G,high reserves: the default low region
    (variants.KERNELS default_low) and the high one."""
    low = variants.LINE["default_low"]
    return ([(low, 0, G4)] if low else []) + [(GIB, G4, TOP48)]


def shrink_two_regions(hi1):
    """A shrink with a high and a low region, then loads that must be
    protected with no WARN (panic_on_warn would kill the guest inside
    the load), and a crash."""
    cmdline = "crashkernel=1G,high crashkernel=256M,low panic_on_warn=1"
    regions = [(256 * MIB, 0, G4), hi1]
    after = ["load-c", "unload", "load-s", "crash"]
    if variants.LINE["swap"]:
        # Shrinking below the low region's size gives up the main region
        # and makes the former low region crashk_res (crash_shrink_memory()'s
        # swap): the next loads go there.
        return {"shrink-swap": sc(cmdline=cmdline, steps=["shrink:%d" % (1080 * MIB)] + after,
                                  regions=regions)}
    # No swap (6.1): kexec_crash_size is the high region alone; half of it
    # goes back, and what is left, mapped apart at boot, gets the loads.
    return {"shrink-high": sc(cmdline=cmdline, steps=["shrink:%d" % (512 * MIB)] + after,
                              regions=regions)}


def geometry_apart(v):
    """Page-table geometry variant V against its own control:
    a late region and ,high with its default low region, both mapped
    apart (blocks kept around them) and protected whole on both load
    paths, a crash, and the stray write."""
    ctl = "control-" + v
    apart = APART
    return {
        ctl: sc(v, steps=["selftest"], shape="control"),
        "plain-512M-" + v: sc(v, cmdline="crashkernel=512M", steps=LOAD_UNLOAD, shape="shape",
                              regions=[(512 * MIB, 0, G4)], control=ctl, log=apart),
        "high-1G-" + v: sc(v, cmdline="crashkernel=1G,high",
                           steps=["load-s", "unload", "load-c", "crash"], shape="shape",
                           regions=high_regions(), control=ctl,
                           log=apart),
        "stray-write-" + v: sc(v, mem="2G", cmdline="crashkernel=256M",
                               steps=["load-c", "stray", "crash"], regions=[(256 * MIB, 0, G4)]),
    }


SCENARIOS = scenarios_apart()
# The unpatched kernel's unfiltered dump: make bench-crash's reference.
FULL_ONLY = {"base-crash-fulldump-1G"}
# Only in "make test-full": 4K pages with 39-bit VA (PUD folded), 16K/47,
# 64K/48, and where the line has them (config/KERNEL/), LPA2 (4K/52: five
# levels, 16K/52: four) on -cpu max, which has FEAT_LPA2.
for _v in ("g4k39", "g16k47", "g64k48", "g4k52", "g16k52"):
    if _v in variants.fragments():
        _g = geometry_apart(_v)
        SCENARIOS.update(_g)
        FULL_ONLY |= set(_g)
# Two levels of page tables (16K/36: 32M blocks; 64K/42: 512M blocks):
# the split entries are entries of swapper_pg_dir.  The linear map has
# no contiguous PMD runs there (map_mem() builds it one PGD entry at a
# time: pmd_cont_bytes is 0 in the control boot), so a fixed base
# aligned to a block (0xa0000000) needs no split at all.  No crash where
# the top-level blocks stay (6.12, 7.3): makedumpfile 1.7.2 cannot read
# them, with or without the series.  The 6.1 backport page-maps all of
# RAM there when crashkernel= is given, as 6.1 does (variants.pages_all_ram),
# and its dumps are read.
for _v in ("g16k36", "g64k42"):
    _g = {n: geometry_apart(_v)[n] for n in ("control-" + _v, "plain-512M-" + _v)}
    _g["fixed-256M-" + _v] = sc(_v, cmdline="crashkernel=256M@0xa0000000",
                                steps=["load-s", "unload", "load-c", "unload"],
                                shape="shape",
                                regions=[(256 * MIB, 0xa0000000, 0xb0000000)],
                                control="control-" + _v,
                                log=None if variants.pages_all_ram(_v) else APART)
    if variants.pages_all_ram(_v):
        _g["plain-512M-" + _v]["log"] = None
        _g["crash-plain-512M-" + _v] = sc(_v, cmdline="crashkernel=512M",
                                          steps=["load-s", "crash"],
                                          regions=[(512 * MIB, 0, G4)])
    SCENARIOS.update(_g)
    FULL_ONLY |= set(_g)
# The LPA2 kernels on a CPU without FEAT_LPA2, which fold a level at run
# time: 4K/52 runs with four levels (P4D folded), 16K/52 with three (PUD
# folded: the entries split at a region's edges are then entries of
# swapper_pg_dir, written through set_swapper_pgd()).
for _v in ("g4k52", "g16k52"):
    if _v not in variants.fragments():
        continue
    _n = "nolpa2-plain-512M-" + _v
    SCENARIOS["nolpa2-control-" + _v] = sc(_v, shape="control", cpu="max,lpa2=off")
    SCENARIOS[_n] = sc(_v, cmdline="crashkernel=512M", cpu="max,lpa2=off",
                       steps=["load-c", "unload", "load-s", "crash"], shape="shape",
                       regions=[(512 * MIB, 0, G4)], control="nolpa2-control-" + _v,
                       log=APART)
    FULL_ONLY |= {_n, "nolpa2-control-" + _v}


def variants_used(full=False):
    """The kernel variants the scenarios of make test (FULL: test-full) boot,
    other than base and series, which every run builds."""
    return sorted({s["variant"] for n, s in SCENARIOS.items()
                   if full or n not in FULL_ONLY} - {"base", "series"})


def has_crash(name):
    """Does scenario NAME crash (and so export a dump for crash)?"""
    return "crash" in [st.split(":")[0] for st in SCENARIOS[name]["steps"]]


def control_of(name):
    s = SCENARIOS[name]
    if s["control"]:
        return s["control"]
    return "base-control" if s["variant"] == "base" else "control"


def needs_control(name):
    s = SCENARIOS[name]
    return s["lost"] or (s["shape"] in ("shape", "nothing")
                         and not variants.pages_all_ram(s["variant"]))


def selftest_expect(spec):
    """The outcome of each kselftest test in scenario SPEC.  The lab runs it
    with a capture kernel to load (KDUMP_KERNEL) and without KDUMP_SHRINK.
    A kernel that protects nothing (6.12 and 7.3 without the series) makes
    the protection tests and the mapping test skip; the unpatched 6.1
    protects the loaded segments only (not the whole regions: a failure)
    and page-maps all of RAM (a failure of the page-mapping test, which
    skips with two levels, where the 6.1 backport keeps that)."""
    v = spec["variant"]
    has_region = bool(spec["regions"])
    forced = spec["shape"] == "forced" or "kfence.sample_interval=0" in spec["cmdline"]
    prot = "ok" if has_region and variants.protects(v) else "skip"
    load = prot
    if prot == "ok" and variants.is_base(v):
        load = "fail"
    limit = "ok"
    if forced or not has_region:
        limit = "skip"
    elif variants.pages_all_ram(v):
        limit = "skip" if variants.levels(v) == 2 else "fail"
    exp = {ST_LOAD: load, ST_UNLOAD: prot, ST_MAPPED: prot,
           ST_MEMTYPE: "ok" if has_region else "skip",
           ST_LIMIT: limit, ST_SHRINK: "skip"}
    exp.update(spec["selftest"])
    return exp


def selftest_skip_reasons(spec):
    """{test: what its skip line must say} for the tests selftest_expect
    expects to skip in scenario SPEC (the kselftest's own messages)."""
    v = spec["variant"]
    out = {ST_SHRINK: "set KDUMP_SHRINK=1 to run"}
    if not spec["regions"]:
        for t in (ST_LOAD, ST_UNLOAD, ST_MAPPED, ST_MEMTYPE, ST_LIMIT):
            out[t] = "no Crash kernel in /proc/iomem"
        return out
    if not variants.protects(v):
        for t in (ST_LOAD, ST_UNLOAD, ST_MAPPED):
            out[t] = "leaves a loaded crash kernel valid in the linear map"
    if variants.pages_all_ram(v) and variants.levels(v) == 2:
        out[ST_LIMIT] = "two levels"
    elif "debug_pagealloc=on" in spec["cmdline"]:
        out[ST_LIMIT] = "debug_pagealloc maps everything with pages"
    else:
        out[ST_LIMIT] = "maps everything with pages"
    return out


def check_regions(c, regs, want):
    got = sorted(regs)
    ok = len(got) == len(want)
    for (s, e), (size, lo, hi) in zip(got, sorted(want, key=lambda w: w[1])):
        ok = ok and e - s == size and s >= lo and e <= hi
    c.check("crash_regions_as_expected", ok, "got %s, want (size, lo, hi) %s" % (
        [(hex(s), hex(e)) for s, e in got], [(hex(a), hex(b), hex(d)) for a, b, d in want]))


def evaluate(name, results, image_size=None):
    """The checks of scenario NAME, given every scenario's Result."""
    spec = SCENARIOS[name]
    res = results[name]
    c = C.Checker(name, spec["variant"])
    if not C.check_boot(c, res):
        return c
    try:
        _evaluate(c, name, spec, res, results, image_size)
    except (KeyError, IndexError, ValueError, TypeError, lab.LabError) as e:
        c.check("records_complete", False, "evaluation stopped: %s: %s; records: %s"
                % (type(e).__name__, e, os.path.join(os.path.dirname(res.console), "results.txt")))
    return c


def _evaluate(c, name, spec, res, results, image_size):
    steps = spec["steps"]
    v = spec["variant"]
    C.check_reports(c, res, steps, spec["lost"])
    regs = C.regions(res)
    total = sum(e - s for s, e in regs)
    if spec["regions"] is not None:
        check_regions(c, regs, spec["regions"])
    if spec["log"]:
        c.check("kernel_log_says_" + spec["log"].replace(" ", "_")[:40],
                any(spec["log"] in line for line in C.klog(res)),
                "no '%s' in the crashkernel log lines: %s" % (spec["log"], C.klog(res)))
    page = variants.page_size(spec["variant"])
    shape = spec["shape"]
    m = res.map("boot")
    if shape == "control":
        c.eq("no_crash_region", regs, [])
        c.check("linear_map_has_blocks", m.get("pud_bytes", 0) + m.get("pmd_bytes", 0) > 0,
                "pud %s pmd %s" % (m.get("pud_bytes"), m.get("pmd_bytes")))
    elif shape == "shape" and variants.pages_all_ram(v):
        C.check_base_shape(c, res, lab.parse_size(spec["mem"]), total, page)
    elif shape in ("shape", "nothing"):
        ctl = results.get(control_of(name))
        if c.check("control_available", ctl is not None and ctl.outcome == lab.DONE,
                   "control boot %s: %s" % (control_of(name), ctl.outcome if ctl else "not run")):
            if shape == "nothing":
                c.eq("no_crash_region", regs, [])
                cm = ctl.map("boot")
                for key in ("pud_bytes", "pmd_bytes", "pte_bytes", "pte_tables"):
                    c.check("same_%s_as_control" % key,
                            m.get(key) is not None and m.get(key) == cm.get(key),
                            "got %r, control %r" % (m.get(key), cm.get(key)))
            elif variants.is_base(v):
                C.check_blocks_as_control(c, res, ctl)
            else:
                C.check_apart_shape(c, res, ctl, page)
    elif shape == "forced" and not variants.LINE["alias_blocks"]:
        C.check_crash_page_mapped(c, m)
        c.check("everything_page_mapped", m.get("pud_bytes") == 0 and m.get("pmd_bytes") == 0,
                "pud %s pmd %s" % (m.get("pud_bytes"), m.get("pmd_bytes")))
    elif shape == "forced":
        C.check_crash_page_mapped(c, m)
        C.check_pages_but_kernel_alias(c, res, page)
    elif shape is not None:
        raise ValueError("unknown shape %r" % shape)
    kinds = {s.split(":")[0] for s in steps}
    if kinds & {"load-c", "load-s"}:
        if image_size is None:
            image_size = os.path.getsize(lab.kernel_image(spec["variant"]))
        C.check_loads(c, res, image_size, spec["invalid_elsewhere"], variants.protects(v),
                      whole=not variants.is_base(v))
    if "selftest" in kinds:
        C.check_selftest(c, res, selftest_expect(spec), selftest_skip_reasons(spec))
    if "stray" in kinds:
        C.check_stray(c, res, variants.protects(v),
                      results.get(control_of(name)) if spec["lost"] else None)
    if "crash" in kinds and spec["lost"]:
        pass    # check_stray: no capture to check
    elif "crash" in kinds:
        C.check_capture(c, res, vmcore.makedumpfile_refuses(v))
        blocks = None
        if shape == "forced" and variants.LINE["alias_blocks"]:
            pass      # blocks over the kernel text alias (see check_pages_but_kernel_alias)
        elif variants.pages_all_ram(v) or shape == "forced":
            blocks = False    # page-mapped everywhere (variants.pages_all_ram)
        elif not spec["invalid_elsewhere"] and "rodata=full" not in spec["cmdline"]:
            blocks = True
        C.check_analysis(c, res, page, variants.split_slot_size(v),
                         spec["invalid_elsewhere"], blocks, variants.protects(v))
    if "shrink" in kinds:
        sizes = [int(st.split(":", 1)[1]) for st in steps if st.startswith("shrink:")]
        C.check_shrink(c, res, sizes[0])
