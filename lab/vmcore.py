"""Open a capture's dump with crash, the tool kdump users analyse dumps with.

The capture kernel writes its makedumpfile output (and, with lab.fulldump=1,
the ELF /proc/vmcore) to the raw virtio disk the host gave the guest
(lab.run_guest disk_bytes); see export_dump in lab/guest/init.  This module

  1. reads the dumps back from the disk image by offset and length and
     checks each against the SHA-256 the guest computed from its source;
  2. runs Debian's arm64 `crash` (lab/crashroot.sh) under qemu-user on the
     variant's own vmlinux (built with debug info, from the same build as
     the Image the guest booted) and the dump, with one batch of commands:
     sys, log, bt, kmem -i, ptov, a vtop of every 2 MiB of RAM through the
     linear map and, for the pattern the guest wrote, rd -p and rd;
  3. parses what crash printed (parse_* functions, unit-tested on recorded
     and doctored outputs in tests/).

The checks themselves are in lab/checks.py (check_analysis).  Running crash
is a host-side step: a failure to run it is an Analysis with .error set,
which fails the scenario's checks, never an exception.
"""

import hashlib
import os
import re
import struct
import subprocess
import time
from dataclasses import dataclass, field

import lab
import variants

CRASH_ROOT = os.path.join(lab.BUILD, "crash", "root")
QEMU_USER = "qemu-aarch64-static"
STEP = 2 << 20          # vtop sampling step through RAM
U64 = (1 << 64) - 1
PATTERN_MAGIC = 0x4c41425041545432   # lab/guest/pattern.c
# The two crash builds a kernel line can use (variants.KERNELS "crash"):
#   debian  Debian 12's arm64 crash 8.0.2, run under qemu-user
#           (lab/crashroot.sh); it stops on 16K pages ("16K pages not
#           supported."), so 16K variants get no analysis (and say so)
#   source  Debian's crash 9.0.2 source with the upstream fixes for newer
#           kernels, built for arm64 dumps on the host (lab/crashsrc.sh);
#           --no_modules, as the lab's kernels have no modules and 7.3
#           without CONFIG_MODULES has no "modules" list to resolve
CRASH_TOOLS = {
    "debian": dict(binary=os.path.join(CRASH_ROOT, "usr/bin/crash"),
                   cmd=[QEMU_USER, "-L", CRASH_ROOT, os.path.join(CRASH_ROOT, "usr/bin/crash")],
                   name="crash 8.0.2", setup="lab/crashroot.sh",
                   page_sizes=(4 << 10, 64 << 10)),
    "source": dict(binary=os.path.join(lab.BUILD, "crash-src", "crash"),
                   cmd=[os.path.join(lab.BUILD, "crash-src", "crash"), "--no_modules"],
                   name="crash 9.0.2 with fixes", setup="lab/crashsrc.sh",
                   page_sizes=(4 << 10, 16 << 10, 64 << 10)),
}
CRASH = CRASH_TOOLS[variants.LINE["crash"]]


@dataclass
class Analysis:
    """What crash made of one dump.  error: why there is no analysis
    (a host-side step failed); outputs: {key: text} per command."""
    dump: str = ""
    error: str = ""
    outputs: dict = field(default_factory=dict)
    vtop_points: list = field(default_factory=list)   # [(pa, va)]
    pattern: list = field(default_factory=list)       # [(pa, va)]
    seconds: float = 0.0
    rc: int = None
    transfer: list = field(default_factory=list)      # [(what, ok, detail)]
    doctored: str = ""   # how this dump was damaged on purpose: its checks must fail


# The geometries Debian 12's makedumpfile (1.7.2) refuses: 52-bit VA with
# 4K or 16K pages, which is FEAT_LPA2 on 6.12 ("PAGE SIZE 0x1000 and VA
# Bits 52 not supported").  The capture kernel runs and vmcore-dmesg reads
# /proc/vmcore; there is just no filtered dump to open.
MAKEDUMPFILE_UNSUPPORTED = "PAGE SIZE 0x%x and VA Bits 52 not supported"


def makedumpfile_refuses(variant):
    """The message makedumpfile 1.7.2 stops with on VARIANT, or None."""
    if variants.va_bits(variant) == 52 and variants.page_size(variant) in (4 << 10, 16 << 10):
        return MAKEDUMPFILE_UNSUPPORTED % variants.page_size(variant)
    return None


def supported(variant):
    """None when crash can analyse VARIANT's dumps, else why not."""
    if variants.page_size(variant) not in CRASH["page_sizes"]:
        return "%s does not support %dK pages" % (CRASH["name"], variants.page_size(variant) >> 10)
    if makedumpfile_refuses(variant):
        return ("makedumpfile 1.7.2 writes no dump for %dK pages with 52-bit VA (LPA2)"
                % (variants.page_size(variant) >> 10))
    return None


def vmlinux(variant):
    return os.path.join(variants.describe(variant)["out"], "vmlinux")


def sha256_range(path, offset, length, out=None):
    """SHA-256 of LENGTH bytes of PATH from OFFSET, optionally copied to OUT;
    None when the file is shorter."""
    h = hashlib.sha256()
    left = length
    dst = open(out, "wb") if out else None
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            while left:
                b = f.read(min(left, 8 << 20))
                if not b:
                    return None
                h.update(b)
                if dst:
                    dst.write(b)
                left -= len(b)
    finally:
        if dst:
            dst.close()
    return h.hexdigest()


def extract(res, rundir, fulldump):
    """Copy the dumps out of RUNDIR's disk image.  Returns ({name: path},
    [(check, ok, detail)]): the -d 31 dump as "kdump" and, when the
    scenario asked for it (FULLDUMP, lab.fulldump=1), the ELF vmcore as
    "elf": then its records must be there, or "elf_exported" fails."""
    disk = os.path.join(rundir, lab.DISK_IMAGE)
    paths, checks = {}, []
    specs = [("kdump", 0, res.first("capture", "dump_bytes"),
              res.first("capture", "dump_sha256"), res.first("capture", "dump_export_rc"))]
    if fulldump:
        specs.append(("elf", res.first("capture", "vmcore_offset"), res.first("capture", "vmcore"),
                      res.first("capture", "vmcore_sha256"),
                      res.first("capture", "vmcore_export_rc")))
    for name, off, size, want, rc in specs:
        out = os.path.join(rundir, "dump." + name)
        try:
            off, size = int(off), int(size)
        except (TypeError, ValueError):
            checks.append(("%s_exported" % name, False,
                           "no size/offset records (%r, %r)" % (off, size)))
            continue
        if rc != "0" or not want or not os.path.exists(disk):
            checks.append(("%s_exported" % name, False,
                           "guest dd exit %r, sha256 %r, disk %s" % (rc, want, disk)))
            continue
        got = sha256_range(disk, off, size, out)
        ok = got == want
        checks.append(("%s_transferred_intact" % name, ok,
                       "sha256 on the host %s, in the guest %s (%d bytes at %d)"
                       % (got, want, size, off)))
        if ok:
            paths[name] = out
    return paths, checks


def vmcoreinfo(res):
    """{key: value} of the VMCOREINFO lines the capture kernel reported."""
    out = {}
    for v in res.all("capture", "vmcoreinfo"):
        if "=" in v:
            k, val = v.split("=", 1)
            out[k] = val
    return out


def linear_va(pa, info):
    """The linear-map address of PA: (PA - PHYS_OFFSET) | PAGE_OFFSET, with
    PAGE_OFFSET = -(1 << VA_BITS), as __phys_to_virt() computes it."""
    va_bits = int(info["NUMBER(VA_BITS)"])
    phys_offset = int(info["NUMBER(PHYS_OFFSET)"], 0)
    page_offset = (1 << 64) - (1 << va_bits)
    return ((pa - phys_offset) | page_offset) & U64


def linear_pa(va, info):
    """The physical address of linear-map address VA (the inverse of
    linear_va), or None when VA is not in the linear map (its lower half
    of the kernel's address space)."""
    va_bits = int(info["NUMBER(VA_BITS)"])
    page_offset = (1 << 64) - (1 << va_bits)
    if not page_offset <= va < (1 << 64) - (1 << (va_bits - 1)):
        return None
    return (va - page_offset + int(info["NUMBER(PHYS_OFFSET)"], 0)) & U64


def vtop_points(res, info):
    """[(pa, va)] every STEP through System RAM."""
    pts = []
    for s, e in sorted(lab.regions_of(res.all("boot", "ram"))):
        pa = (s + STEP - 1) // STEP * STEP
        while pa < e:
            pts.append((pa, linear_va(pa, info)))
            pa += STEP
    return pts


def pattern_pages(res, info):
    return [(int(v, 16), linear_va(int(v, 16), info)) for v in res.all("pattern", "page")]


def crash_command(vmlinux_path, dump, cmdfile):
    return CRASH["cmd"] + ["-s", "--no_scroll", "-i", cmdfile, vmlinux_path, dump]


SEP = "===lab:%s==="


def run_crash(vmlinux_path, dump, commands, outdir, timeout=600):
    """Run crash once with COMMANDS [(key, command)]; ({key: text}, rc,
    seconds, error).  Each command's output is delimited by a marker that
    crash's own `echo`-less command set can still print: a gdb echo."""
    os.makedirs(outdir, exist_ok=True)
    cmdfile = os.path.join(outdir, "crash.cmds")
    with open(cmdfile, "w") as f:
        for key, cmd in commands:
            f.write("gdb echo %s\\n\n" % (SEP % key))
            f.write(cmd + "\n")
        f.write("gdb echo %s\\n\n" % (SEP % "end"))
        f.write("exit\n")
    log = os.path.join(outdir, "crash.out")
    t = time.time()
    try:
        with open(log, "w") as f:
            p = subprocess.run(crash_command(vmlinux_path, dump, cmdfile), stdin=subprocess.DEVNULL,
                               stdout=f, stderr=subprocess.STDOUT, timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        return {}, None, time.time() - t, "crash did not finish in %ds; log: %s" % (timeout, log)
    except OSError as e:
        return {}, None, 0.0, "cannot run %s: %s (run 'make deps' as root, then %s)" % (
            CRASH["cmd"][0], e.strerror, CRASH["setup"])
    secs = time.time() - t
    with open(log, errors="replace") as f:
        text = f.read()
    return split_outputs(text), rc, secs, ""


def split_outputs(text):
    """{key: text} from crash's output with SEP markers; "_head" is what
    came before the first marker (crash's own start-up messages)."""
    out = {}
    key = "_head"
    buf = []
    for line in text.splitlines():
        m = re.fullmatch(r"===lab:([\w.-]+)===", line.strip())
        if m:
            out[key] = "\n".join(buf)
            key, buf = m.group(1), []
        else:
            buf.append(line)
    out[key] = "\n".join(buf)
    return out


def analyse(res, variant, fulldump, timeout=600):
    """Extract the dumps of RES and run crash on them.  Returns {name:
    Analysis}: "kdump" (the -d 31 dump), "elf" (the ELF vmcore, when
    FULLDUMP: the scenario booted with lab.fulldump=1) and the damaged copies of doctor(); None when the
    guest did not finish (nothing to analyse).  A host-side failure (disk
    full, a malformed dump) is an Analysis error, never an exception; the
    disk image and the ELF dump are gone afterwards."""
    rundir = os.path.dirname(res.console)
    if res.outcome != lab.DONE:
        cleanup(rundir)
        return None
    try:
        return _analyse(res, variant, rundir, timeout, fulldump)
    except (OSError, ValueError, struct.error) as e:
        return {"kdump": Analysis(error="dump analysis failed: %s: %s"
                                  % (type(e).__name__, e))}
    finally:
        cleanup(rundir)


def cleanup(rundir):
    """Delete the RAM-sized files of a run: the disk image and the ELF dump."""
    for f in (lab.DISK_IMAGE, "dump.elf"):
        try:
            os.unlink(os.path.join(rundir, f))
        except FileNotFoundError:
            pass


def _analyse(res, variant, rundir, timeout, fulldump):
    out = {}
    why = supported(variant)
    if why:
        return {"kdump": Analysis(error="not analysed: " + why)}
    paths, transfer = extract(res, rundir, fulldump)
    info = vmcoreinfo(res)
    vml = vmlinux(variant)
    for name in ("kdump", "elf"):
        if name == "elf" and not fulldump:
            continue
        a = Analysis(transfer=[t for t in transfer if t[0].startswith(name)])
        out[name] = a
        if name not in paths:
            a.error = "no %s dump to analyse" % name
            continue
        a.dump = paths[name]
        if not os.path.exists(vml):
            a.error = "%s is missing (lab/build.sh %s)" % (vml, variant)
            continue
        if not os.path.exists(CRASH["binary"]):
            a.error = "%s has no crash; run %s" % (CRASH["name"], CRASH["setup"])
            continue
        try:
            a.vtop_points = vtop_points(res, info)
            a.pattern = pattern_pages(res, info) if name == "elf" else []
        except (KeyError, ValueError) as e:
            a.error = "cannot compute linear-map addresses from VMCOREINFO %r: %s" % (info, e)
            continue
        a.outputs, a.rc, a.seconds, a.error = run_crash(
            vml, a.dump, commands(a), os.path.join(rundir, "crash-" + name), timeout)
    if "elf" in out and not out["elf"].error and not out["kdump"].error:
        out.update(doctor(res, out, vml, rundir, info, timeout))
    return out


def elf_offset(path, pa):
    """The file offset of physical address PA in the ELF core PATH, from its
    PT_LOAD program headers; None when no segment holds it."""
    with open(path, "rb") as f:
        eh = f.read(64)
        if eh[:4] != b"\x7fELF" or eh[4] != 2:
            return None
        phoff, = struct.unpack_from("<Q", eh, 32)
        phentsize, phnum = struct.unpack_from("<HH", eh, 54)
        f.seek(phoff)
        for _ in range(phnum):
            ph = f.read(phentsize)
            ptype, _, off, _, paddr, filesz = struct.unpack_from("<IIQQQQ", ph)
            if ptype == 1 and paddr <= pa < paddr + filesz:
                return off + pa - paddr
    return None


def doctor(res, good, vml, rundir, info, timeout):
    """Damaged copies of the dumps, analysed like the real ones; their
    checks must fail (lab/checks.py check_analysis):
      kdump-truncated   the -d 31 dump cut to half its length;
      elf-pte-flipped   in the ELF dump, the page-table entry that maps one
                        sampled linear-map address (outside the crash
                        regions, mapped by a PTE) points 2 MiB further."""
    out = {}
    k = good["kdump"]
    t = Analysis(dump=k.dump + ".truncated", doctored="the -d 31 dump cut to half its length",
                 vtop_points=k.vtop_points)
    with open(k.dump, "rb") as src, open(t.dump, "wb") as dst:
        dst.write(src.read(os.path.getsize(k.dump) // 2))
    t.outputs, t.rc, t.seconds, t.error = run_crash(
        vml, t.dump, commands(t), os.path.join(rundir, "crash-kdump-truncated"), timeout)
    os.unlink(t.dump)
    out["kdump-truncated"] = t

    e = good["elf"]
    walks = {}
    for key, text in e.outputs.items():
        if key.startswith("vtop"):
            walks.update(parse_vtop(text))
    crash = lab.regions_of(res.all("boot", "iomem_crash"))
    f = Analysis(dump=e.dump, doctored="", vtop_points=[])
    for pa, va in e.vtop_points:
        w = walks.get(va)
        if w and w.pa == pa and not w.block and w.entry_ptr and \
                not any(s <= pa < x for s, x in crash):
            ptr_pa = linear_pa(w.entry_ptr, info)
            off = elf_offset(e.dump, ptr_pa) if ptr_pa is not None else None
            if off is not None:
                f.vtop_points = [(pa, va)]
                break
    if not f.vtop_points:
        f.error = "no PTE-mapped sample outside the crash regions to damage"
        out["elf-pte-flipped"] = f
        return out
    with open(e.dump, "r+b") as fd:
        fd.seek(off)
        val, = struct.unpack("<Q", fd.read(8))
        fd.seek(off)
        fd.write(struct.pack("<Q", val ^ (2 << 20)))
    f.doctored = ("the PTE mapping %#x (at physical %#x, file offset %#x) changed from %#x "
                  "to %#x" % (f.vtop_points[0][1], ptr_pa, off, val, val ^ (2 << 20)))
    f.outputs, f.rc, f.seconds, f.error = run_crash(
        vml, f.dump, commands(f), os.path.join(rundir, "crash-elf-pte-flipped"), timeout)
    out["elf-pte-flipped"] = f
    return out


def commands(a):
    cmds = [("sys", "sys"), ("log", "log"), ("bt", "bt"), ("kmem", "kmem -i")]
    # One address per command: crash's vtop stops at the first address
    # whose entry is invalid ("cannot determine swap location"), as the
    # loaded capture kernel's pages are, or free pages with
    # debug_pagealloc.
    for i, (_, va) in enumerate(a.vtop_points):
        cmds.append(("vtop%d" % i, "vtop %#x" % va))
    for i, (pa, va) in enumerate(a.pattern):
        cmds.append(("rdp%d" % i, "rd -p %#x 4" % pa))
        cmds.append(("rdv%d" % i, "rd %#x 4" % va))
        cmds.append(("vtopp%d" % i, "vtop %#x" % va))
    return cmds


# ---------------------------------------------------------------------------
# Parsers of crash's output.  Each returns None (or an empty result) when
# the text is not what crash prints, so that a check fails with the reason.
# ---------------------------------------------------------------------------

def parse_sys(text):
    """{FIELD: value} of `sys` ("RELEASE: 6.1.0", "PANIC: ...")."""
    out = {}
    for line in (text or "").splitlines():
        m = re.match(r"^\s*([A-Z][A-Z ]*[A-Z]):\s(.*)$", line)
        if m:
            out[m.group(1)] = m.group(2).strip()
    return out


def parse_bt(text):
    """The function names of `bt`'s frames, innermost first."""
    return re.findall(r"^\s*#\d+\s+\[[0-9a-f]+\]\s+([\w.]+)", text or "", re.M)


def parse_kmem_total(text):
    """TOTAL MEM of `kmem -i`, in pages; None if absent."""
    m = re.search(r"^\s*TOTAL MEM\s+(\d+)\s", text or "", re.M)
    return int(m.group(1)) if m else None


@dataclass
class Walk:
    """One address's walk in `vtop`: pa is the physical address crash's
    walk of the dump's page tables found (its PAGE: line; the PHYSICAL
    column is computed, not walked), None when the walk ended on an
    invalid or empty entry; block the block size label ("2MB", "1GB",
    "512MB") when a block entry mapped it; entry and entry_ptr the last
    entry the walk read (value, and its kernel address)."""
    pa: int = None
    block: str = None
    entry: int = None
    entry_ptr: int = None


def parse_vtop(text):
    """{va: Walk} from `vtop` of kernel addresses."""
    out = {}
    cur = None
    for line in (text or "").splitlines():
        m = re.match(r"^([0-9a-f]{16})\s+([0-9a-f]+)\s*$", line)
        if m:
            cur = Walk()
            out[int(m.group(1), 16)] = cur
            continue
        if cur is None:
            continue
        m = re.match(r"^\s*(PGD|PUD|PMD|PTE):\s+([0-9a-f]+)\s+=>\s+([0-9a-f]+)\s*$", line)
        if m:
            cur.entry_ptr, cur.entry = int(m.group(2), 16), int(m.group(3), 16)
            continue
        m = re.match(r"^\s*PAGE:\s+([0-9a-f]+)(?:\s+\((\w+)\))?\s*$", line)
        if m:
            cur.pa, cur.block = int(m.group(1), 16), m.group(2)
    return out


def parse_rd(text):
    """[words] of `rd ... 4` (64-bit words, in order)."""
    words = []
    for line in (text or "").splitlines():
        m = re.match(r"^\s*[0-9a-f]+:\s+((?:[0-9a-f]{16}\s*)+)", line)
        if m:
            words += [int(w, 16) for w in m.group(1).split()]
    return words


def pattern_words(pa, n=4):
    return [(pa + 8 * i) ^ PATTERN_MAGIC for i in range(n)]
