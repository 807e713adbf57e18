#!/usr/bin/env python3
"""The one place that says what a kernel variant is.

    base        build/linux-base (Debian's source, no patches), config/lab.config
    series      build/linux (base + patches/), config/lab.config
    NAME        the series with config/NAME.config on top of lab.config
    base-NAME   the base with config/NAME.config on top of lab.config

Each is built out of tree in <tree>/_out or <tree>/_out-NAME (inside the
tree, so that base and series builds see the same relative paths and
ccache shares every object the series did not touch).

The shell scripts read this through the command line:
    lab/variants.py list            every variant name, one per line
    lab/variants.py extra           the NAME variants (config/NAME.config)
    lab/variants.py kernel          KSUFFIX=, KSRC_SUITE=, KPREFIX= and KCRASH= of KERNEL
                                    (KERNELS)
    lab/variants.py shell VARIANT   src=, outdir=, image= and frags=(...)
                                    assignments for eval
An unknown variant is a one-line error and exit status 2.
"""

import os
import shlex
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, "build")
CONFIG = os.path.join(TOP, "config")
BASE_FRAGMENT = os.path.join(CONFIG, "lab.config")
# The kernel lines, and everything that differs between them: the one
# table the lab consults (the shell scripts through "variants.py kernel").
#   suffix      of every per-kernel directory under build/
#   suite       where Debian's linux-source-KERNEL comes from: "host" is an
#               ordinary package of the host's own suites (installed by
#               make deps, tarball in /usr/src); any other value is a
#               suite fetched with a private apt configuration into
#               build/src/ (lab/lib.sh fetch_source), so that the host's
#               apt sources are not changed
#   protects    does the unpatched kernel invalidate a loaded capture
#               kernel in the linear map?  (Removed upstream in 6.4.)
#   pages_all   does the unpatched kernel page-map all of RAM when
#               crashkernel= is given?  (6.1 with DMA zones; its backport
#               keeps that with two levels, see pages_all_ram.)
#   rodata      the rodata= value that keeps the linear map in blocks:
#               "on" until 6.12; in 7.3 "on" means full, and the old
#               meaning is "noalias"
#   rodata_pages  the rodata= value that page-maps the linear map:
#               "full", or "on" in 7.3
#   data_alias_invalid  does the kernel unmap the linear alias of its own
#               data and bss (mark_linear_data_alias_valid(), 7.x with
#               rodata= on or noalias)?  Those points are invalid in a dump.
#   alias_blocks  with rodata=full or debug_pagealloc, does the kernel
#               still map the linear alias of its text with blocks?
#   prefix      the subject prefix of the posted series
#   default_low the low region crashkernel=,high gets without ,low (bytes;
#               0: none, as on 6.1)
#   swap        does crash_shrink_memory() swap crashk_res and
#               crashk_low_res when shrunk below the low size (v6.5 on)?
#               Without it kexec_crash_size is crashk_res alone.
#   bad_log     what the kernel logs for bad crashkernel= input (None:
#               nothing): the generic reservation (kernel/crash_reserve.c,
#               6.9 on) or 6.1's own reserve_crashkernel()
#   crash       which crash opens this line's dumps (lab/vmcore.py
#               CRASH_TOOLS): "debian", Debian 12's 8.0.2; "source", 9.0.2
#               built from Debian's source with the upstream fixes for
#               7.1 and later (8.0.2 stops on 7.3 dumps: "invalid
#               structure member offset: kmem_cache_s_num")
_GENERIC_BAD = {"garbage": "memory value expected", "too-large": None,
                "unaligned-base": "memory is in use", "base-beyond-ram": "memory is in use"}
KERNELS = {
    "6.1": dict(default_low=0, swap=False,
                bad_log={"garbage": "memory value expected",
                         "too-large": "cannot allocate crashkernel",
                         "unaligned-base": "cannot allocate crashkernel",
                         "base-beyond-ram": "cannot allocate crashkernel"},
                suffix="", suite="host", protects=True, pages_all=True,
                rodata="on", rodata_pages="full", alias_blocks=False,
                data_alias_invalid=False, prefix="PATCH 6.1.y", crash="debian"),
    "6.12": dict(default_low=128 << 20, swap=True, bad_log=_GENERIC_BAD,
                 suffix="-6.12", suite="host", protects=False, pages_all=False,
                 rodata="on", rodata_pages="full", alias_blocks=True,
                 data_alias_invalid=False, prefix="PATCH 6.12.y", crash="debian"),
    "7.3": dict(default_low=128 << 20, swap=True, bad_log=_GENERIC_BAD,
                suffix="-7.3", suite="trixie-backports", protects=False,
                pages_all=False, rodata="noalias", rodata_pages="on",
                alias_blocks=False, data_alias_invalid=True, prefix="PATCH", crash="source"),
}
KERNEL = os.environ.get("KERNEL") or "6.1"
if KERNEL not in KERNELS:
    sys.exit("error: KERNEL=%s: the lab knows %s" % (KERNEL, ", ".join(KERNELS)))
LINE = KERNELS[KERNEL]
SUFFIX = LINE["suffix"]
_tree = os.path.join(BUILD, "linux" + SUFFIX)
TREES = {"base": _tree + "-base", "series": _tree}


class UnknownVariant(ValueError):
    pass


def _fragment_files():
    """{NAME: path} of the variant fragments: config/NAME.config other than
    lab.config and lab-KERNEL.config, and config/KERNEL/NAME.config (the
    configurations only that kernel has, like LPA2 on 6.12)."""
    out = {}
    for d in (CONFIG, os.path.join(CONFIG, KERNEL)):
        if os.path.isdir(d):
            out.update((f[:-len(".config")], os.path.join(d, f)) for f in os.listdir(d)
                       if f.endswith(".config") and not f.startswith("lab"))
    return out


def fragments():
    """The names of the variant fragments (see _fragment_files)."""
    return sorted(_fragment_files())


def lab_fragments():
    """lab.config, and what KERNEL adds to it."""
    extra = os.path.join(CONFIG, "lab-%s.config" % KERNEL)
    return [BASE_FRAGMENT] + ([extra] if os.path.exists(extra) else [])


def names():
    out = ["base", "series"]
    for f in fragments():
        out += [f, "base-" + f]
    return out


def describe(name):
    """dict(tree, outdir, out, image, frags) for variant NAME."""
    if name in TREES:
        tree, frag = TREES[name], None
    elif name.startswith("base-") and name[5:] in fragments():
        tree, frag = TREES["base"], name[5:]
    elif name in fragments():
        tree, frag = TREES["series"], name
    else:
        raise UnknownVariant("unknown variant %r (known: %s)" % (name, " ".join(names())))
    outdir = "_out" if frag is None else "_out-" + frag
    frags = lab_fragments() + ([_fragment_files()[frag]] if frag else [])
    out = os.path.join(tree, outdir)
    return dict(tree=tree, outdir=outdir, out=out, frags=frags,
                image=os.path.join(out, "arch/arm64/boot/Image"))


def is_base(name):
    return describe(name)["tree"] == TREES["base"]


def protects(name):
    """Does VARIANT invalidate a loaded capture kernel in the linear map?
    Every series does; of the unpatched kernels only 6.1 (KERNELS)."""
    return not is_base(name) or LINE["protects"]


def pages_all_ram(name):
    """Does VARIANT map all of RAM with pages when crashkernel= is given?
    The unpatched 6.1 (with DMA zones), and its backport with two levels
    of page tables, which keeps that for makedumpfile 1.7.2; later
    kernels keep their blocks, the crash region's included."""
    return LINE["pages_all"] and (is_base(name) or levels(name) == 2)


def config_value(name, symbol):
    """SYMBOL's value in VARIANT's merged config fragments (the last one
    that sets it wins, as in lab/build.sh), or None."""
    val = None
    for frag in describe(name)["frags"]:
        with open(frag) as f:
            for line in f:
                line = line.strip()
                if line.startswith(symbol + "="):
                    val = line.split("=", 1)[1]
                elif line == "# %s is not set" % symbol:
                    val = "n"
    return val


def page_size(name):
    """The variant's page size, from its config fragments."""
    for kib in (64, 16, 4):
        if config_value(name, "CONFIG_ARM64_%dK_PAGES" % kib) == "y":
            return kib << 10
    return 4 << 10   # arm64's default


def va_bits(name):
    """The variant's VA_BITS, from its config fragments."""
    for bits in (36, 39, 42, 47, 48, 52):
        if config_value(name, "CONFIG_ARM64_VA_BITS_%d" % bits) == "y":
            return bits
    return 48


def levels(name):
    """Page-table levels, as ARM64_HW_PGTABLE_LEVELS(VA_BITS) computes them."""
    shift = page_size(name).bit_length() - 1
    return (va_bits(name) - 4) // (shift - 3)


def split_slot_size(name):
    """The size of the linear-map slot the series rebuilds around a crash
    region page-mapped late (SPLIT_SLOT_SIZE in arch/arm64/mm/mmu.c): the
    area of one entry of the level above the PMD (with a folded PUD, of
    the PGD), or with two levels a contiguous run of PMD entries."""
    shift = page_size(name).bit_length() - 1
    pmd_shift = 2 * shift - 3
    if levels(name) == 2:
        cont_pmds = {12: 16, 14: 32, 16: 32}[shift]
        return cont_pmds << pmd_shift
    return 1 << (pmd_shift + shift - 3)


def main(argv):
    if argv[:1] == ["list"] and len(argv) == 1:
        print("\n".join(names()))
    elif argv[:1] == ["extra"] and len(argv) == 1:
        print("\n".join(fragments()))
    elif argv[:1] == ["kernel"] and len(argv) == 1:
        print("KSUFFIX=%s" % shlex.quote(SUFFIX))
        print("KSRC_SUITE=%s" % shlex.quote(LINE["suite"]))
        print("KPREFIX=%s" % shlex.quote(LINE["prefix"]))
        print("KCRASH=%s" % shlex.quote(LINE["crash"]))
    elif argv[:1] == ["shell"] and len(argv) == 2:
        try:
            d = describe(argv[1])
        except UnknownVariant as e:
            print("error: %s" % e, file=sys.stderr)
            return 2
        print("src=%s" % shlex.quote(d["tree"]))
        print("outdir=%s" % shlex.quote(d["outdir"]))
        print("image=%s" % shlex.quote(d["image"]))
        print("frags=(%s)" % " ".join(shlex.quote(f) for f in d["frags"]))
    else:
        print("usage: lab/variants.py list | extra | kernel | shell VARIANT", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
