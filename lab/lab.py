"""Run one lab guest under QEMU and read what it reported.

Layers, as in kunit.py: lab/build.sh and lab/guest.sh build the kernel and
the initramfs; this module boots a guest under a hard timeout and parses the
records the guest writes to its own virtio-serial port (never the console);
lab/checks.py says what the records must show and lab/scenarios.py what
each scenario runs; tests/ and bench/ drive them.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field

import variants

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, "build")
EFI_FW = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"
QEMU = "qemu-system-aarch64"   # every run goes through qemu_base()

VARIANTS = variants.names()
DISK_IMAGE = "dump.img"   # in the run directory, when a run has a disk

# Outcomes of a guest run.
DONE = "done"            # the guest said "done" at the end of its steps
NO_RESULT = "no-result"  # it hung, or died without its final record
LAB_ERROR = "lab-error"  # a host-side step failed (QEMU did not start, no dtb, ...)


class LabError(Exception):
    """A host-side step failed.  str() is one line naming the step and its log."""


_t0 = float(os.environ.get("LAB_T0", time.time()))


def progress(msg):
    print("[%4ds] %s" % (time.time() - _t0, msg), file=sys.stderr, flush=True)


def source_used():
    """Which kernel source the tree of KERNEL was made from, and which one
    the series and the committed figures were made on."""
    tree = variants.TREES["series"]
    try:
        p = subprocess.run(["git", "-C", tree, "log", "-1", "--format=%s", "base"],
                           capture_output=True, text=True)
        used = p.stdout.strip() or "unknown (no %s)" % os.path.relpath(tree, TOP)
    except OSError:
        used = "unknown (no git)"
    with open(os.path.join(TOP, "lab", "source-version-" + variants.KERNEL)) as f:
        made = f.read().strip()
    return "%s; series and figures made on linux-source-%s %s" % (used, variants.KERNEL, made)


def parse_size(text):
    """'512M' -> bytes; plain numbers are bytes."""
    m = re.fullmatch(r"(\d+)([KMGT]?)", text.strip().upper())
    if not m:
        raise ValueError("bad size %r (expected e.g. 512M, 8G)" % text)
    return int(m.group(1)) << {"": 0, "K": 10, "M": 20, "G": 30, "T": 40}[m.group(2)]


@dataclass
class Record:
    idx: int
    step: str
    key: str
    value: str


@dataclass
class Result:
    name: str
    outcome: str
    records: list
    console: str
    seconds: float
    qemu_rc: int = None
    error: str = ""                               # LAB_ERROR: what failed
    garbage: list = field(default_factory=list)   # lines that are no record
    analysis: dict = None                         # lab/vmcore.py, for a capture

    def steps(self, step):
        """Record groups of every run of STEP, in order: [{key: [values]}]."""
        return [g for _, g in self.runs(step)]

    def runs(self, step):
        """[(idx, {key: [values]})] for every run of STEP, in order."""
        groups = {}
        for r in self.records:
            if r.step == step:
                groups.setdefault(r.idx, {}).setdefault(r.key, []).append(r.value)
        return sorted(groups.items())

    def runs_all(self):
        """[(idx, {key: [values], "_step": step})] for every step the first
        kernel ran (boot is 0), in order."""
        groups = {}
        for r in self.records:
            if r.step not in ("capture", "end"):
                g = groups.setdefault((r.idx, r.step), {"_step": r.step})
                g.setdefault(r.key, []).append(r.value)
        return [(i, g) for (i, _), g in sorted(groups.items())]

    def first(self, step, key, default=None):
        for r in self.records:
            if r.step == step and r.key == key:
                return r.value
        return default

    def all(self, step, key):
        return [r.value for r in self.records if r.step == step and r.key == key]

    def errors(self):
        """Every error the guest reported: its own (error=) and those of the
        linear-map reporter (map.error=), as 'step: message'."""
        return ["%s: %s" % (r.step, r.value) for r in self.records
                if r.key in ("error", "map.error")]

    def map(self, step="boot", nth=0):
        """The linear-map figures (lab/guest/linmap.c) of the NTH run of STEP;
        {} when that run did not happen."""
        groups = self.steps(step)
        if nth >= len(groups):
            return {}
        return map_figures(groups[nth])


def regions_of(values):
    """[(start, end)] from 0xSTART-0xEND record values (crash regions,
    System RAM, the kernel image)."""
    out = []
    for v in values:
        s, e = v.split("-")
        out.append((int(s, 16), int(e, 16)))
    return out


def map_figures(group):
    """{name: int or str} from one step's 'map.' records."""
    out = {}
    lists = ("map.crash_region", "map.crash_low_region")
    for k in lists:
        for kv in group.get(k, []):
            out.setdefault(k[4:], []).append(kv)
    for k, v in group.items():
        if k.startswith("map.") and k not in lists:
            out[k[4:]] = int(v[-1], 0) if re.fullmatch(r"-?(0x)?[0-9a-f]+", v[-1]) else v[-1]
    return out


_REC = re.compile(r"^(\d+):([\w.-]+):([\w.-]+)=(.*)$")


def parse_records(text, garbage=None):
    """Parse the guest's result channel: '<idx>:<step>:<key>=<value>' lines.

    Nothing else belongs there; every other non-empty line is appended to
    GARBAGE (when given), so that the checks can fail on it."""
    out = []
    for line in text.splitlines():
        line = line.rstrip("\r")
        m = _REC.match(line)
        if m:
            out.append(Record(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
        elif line.strip() and garbage is not None:
            garbage.append(line)
    return out


def qemu_base(mem, machine_opts="", cpu="max"):
    """The QEMU command every lab run starts with.  -nodefaults: no device
    the lab did not declare (QEMU virt would add a virtio-net NIC whose
    option ROM comes from ipxe-qemu, which a minimal host lacks).  CPU:
    the -cpu model and its properties ("max,lpa2=off": without FEAT_LPA2)."""
    return [QEMU, "-nodefaults",
            "-M", "virt,dtb-kaslr-seed=off" + machine_opts, "-cpu", cpu,
            "-m", mem, "-display", "none", "-monitor", "none"]


def run_helper(step, cmd, log, **kw):
    """Run a host-side helper command with its output in LOG; LabError
    (one line, naming STEP and LOG) when it cannot run or fails."""
    os.makedirs(os.path.dirname(log), exist_ok=True)
    try:
        with open(log, "w") as f:
            p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=f, check=False, **kw)
    except OSError as e:
        raise LabError("%s: cannot run %s: %s" % (step, cmd[0], e.strerror))
    if p.returncode:
        with open(log) as f:
            last = ([ln.strip() for ln in f if ln.strip()] or ["no output"])[-1]
        raise LabError("%s failed (exit %d: %s); log: %s" % (step, p.returncode, last, log))
    return p.stdout


def dma_limited_dtb(mem, bits):
    """QEMU virt's own device tree for MEM of RAM, plus a bus whose
    dma-ranges limit DMA to BITS address bits (as on the Raspberry Pi 4).
    The kernel takes the lowest such limit for ZONE_DMA.  LabError when a
    step fails."""
    out = os.path.join(BUILD, "dtb", "virt-%s-dma%d.dtb" % (mem, bits))
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    raw = out + ".orig"
    logs = os.path.join(BUILD, "logs")
    run_helper("dtb dump (qemu dumpdtb)", dtb_dump_command(mem, raw),
               os.path.join(logs, "dtb-dump.log"), stdin=subprocess.DEVNULL)
    dts = run_helper("dtc (dtb to dts)", ["dtc", "-q", "-I", "dtb", "-O", "dts", raw],
                     os.path.join(logs, "dtc.log")).decode()
    limit = 1 << bits
    # RAM starts at 1 GiB on virt: the window covers [1 GiB, 2^bits).
    node = """
\tdma-limited-bus {
\t\tcompatible = "simple-bus";
\t\t#address-cells = <0x02>;
\t\t#size-cells = <0x02>;
\t\tranges;
\t\tdma-ranges = <0x00 0x40000000 0x00 0x40000000 0x%02x 0x%08x>;
\t};
""" % ((limit - 0x40000000) >> 32, (limit - 0x40000000) & 0xffffffff)
    i = dts.rindex("};")
    dts = dts[:i] + node + dts[i:]
    run_helper("dtc (dts to dtb)", ["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", out + ".tmp", "-"],
               os.path.join(logs, "dtc.log"), input=dts.encode())
    os.rename(out + ".tmp", out)
    os.unlink(raw)
    return out


def dtb_dump_command(mem, path):
    return qemu_base(mem, ",dumpdtb=" + path)


def kernel_image(variant):
    """VARIANT's Image; LabError when it is unknown or not built."""
    try:
        img = variants.describe(variant)["image"]
    except variants.UnknownVariant as e:
        raise LabError(str(e))
    if not os.path.exists(img):
        raise LabError("%s is missing; build it first (lab/build.sh %s)" % (img, variant))
    return img


def initramfs(variant):
    ird = os.path.join(BUILD, "initramfs" + variants.SUFFIX, variant, "first.cpio.gz")
    if not os.path.exists(ird):
        raise LabError("%s is missing; run lab/guest.sh %s" % (ird, variant))
    return ird


def qemu_command(variant, mem, cmdline, rundir, firmware="dt", icount=False,
                 smp=2, dtb=None, kernel=None, disk=None, cpu="max"):
    """The full QEMU command line of one guest.  Every device is declared:
    the PL011 console (into console.log), the virtio-serial port that
    carries the results (into results.txt) and, with DISK (a raw image
    file), the virtio disk the capture kernel writes its dumps to.  A
    variant built with MTE gets a machine with MTE (tag storage), as MTE
    hardware would."""
    try:
        mte = variants.config_value(variant, "CONFIG_ARM64_MTE") == "y"
    except variants.UnknownVariant as e:
        raise LabError(str(e))
    cmd = qemu_base(mem, ",mte=on" if mte else "", cpu) + [
        "-smp", str(smp),
        # Guest RAM is not reserved on the host: large guests fit.
        "-object", "memory-backend-ram,id=ram,size=%s,reserve=off" % mem,
        "-machine", "memory-backend=ram",
        "-no-reboot",
        "-serial", "file:" + os.path.join(rundir, "console.log"),
        "-kernel", kernel or kernel_image(variant), "-initrd", initramfs(variant),
        "-append", cmdline,
        "-device", "virtio-serial-device",
        "-chardev", "file,id=lab,path=" + os.path.join(rundir, "results.txt"),
        "-device", "virtserialport,chardev=lab,name=lab"]
    if disk:
        cmd += ["-drive", "file=%s,if=none,format=raw,id=dump,cache=unsafe" % disk,
                "-device", "virtio-blk-device,drive=dump"]
    if firmware == "uefi":
        if not os.path.exists(EFI_FW):
            raise LabError("%s is missing; run 'make deps' as root (package qemu-efi-aarch64)"
                           % EFI_FW)
        cmd += ["-bios", EFI_FW]
    elif firmware != "dt":
        raise LabError("unknown firmware %r (expected dt or uefi)" % firmware)
    if dtb:
        cmd += ["-dtb", dtb]
    if icount:
        cmd += ["-icount", "shift=0,sleep=off"]
    return cmd


def run_guest(name, variant="series", mem="8G", cmdline="", steps=(),
              marker=None, firmware="dt", icount=False, timeout=300, smp=2,
              dtb=None, kernel=None, disk_bytes=0, cpu="max"):
    """Boot one guest and return its Result.  Never raises: a hang or a
    guest that dies without its final record is NO_RESULT; a host-side
    failure (no Image, QEMU does not start) is LAB_ERROR with one line
    that names the step and its log.  KERNEL boots another Image with
    VARIANT's initramfs (and capture kernel).  DISK_BYTES: the size of
    the (sparse) disk image, dump.img in the run directory, that the
    capture kernel writes its dumps to; see lab/vmcore.py.  CPU: as for
    qemu_base()."""
    rundir = os.path.join(BUILD, "runs" + variants.SUFFIX, name)
    os.makedirs(rundir, exist_ok=True)
    # Nothing of an earlier run may pass for this one's: its records, its
    # dumps, crash's outputs on them.
    for f in os.listdir(rundir):
        p = os.path.join(rundir, f)
        if f in ("console.log", "results.txt", "qemu.err") or f.startswith("dump."):
            os.unlink(p)
        elif f.startswith("crash-") and os.path.isdir(p):
            shutil.rmtree(p)
    marker = marker or "m%x" % (int(time.time() * 1000) & 0xffffffff)
    full = "console=ttyAMA0 panic=1 " + cmdline
    full += " lab.steps=%s lab.marker=%s" % (",".join(steps) or "none", marker)
    disk = None
    if disk_bytes:
        disk = os.path.join(rundir, DISK_IMAGE)
        with open(disk, "wb") as f:
            f.truncate(disk_bytes)
    try:
        cmd = qemu_command(variant, mem, full.strip(), rundir, firmware, icount,
                           smp, dtb, kernel, disk, cpu)
    except LabError as e:
        return Result(name, LAB_ERROR, [], os.path.join(rundir, "console.log"), 0.0,
                      error=str(e))
    with open(os.path.join(rundir, "qemu.cmd"), "w") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
    t = time.time()
    rc = None
    err = os.path.join(rundir, "qemu.err")
    try:
        with open(err, "wb") as f:
            rc = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=f,
                                stderr=subprocess.STDOUT, timeout=timeout).returncode
    except subprocess.TimeoutExpired:
        pass
    except OSError as e:
        return Result(name, LAB_ERROR, [], os.path.join(rundir, "console.log"), 0.0,
                      error="QEMU start: cannot run %s: %s" % (cmd[0], e.strerror))
    secs = time.time() - t
    garbage = []
    try:
        with open(os.path.join(rundir, "results.txt"), errors="replace") as f:
            recs = parse_records(f.read(), garbage)
    except FileNotFoundError:
        recs = []
    res = Result(name, outcome_of(recs), recs, os.path.join(rundir, "console.log"),
                 secs, rc, garbage=garbage)
    if rc and not recs:
        # QEMU gave up before the guest said anything: its own message
        # (bad option, missing firmware or ROM) is the reason.
        with open(err, errors="replace") as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        res.outcome = LAB_ERROR
        res.error = "QEMU start failed (exit %d: %s); log: %s" % (
            rc, lines[-1] if lines else "no output", err)
    return res


def outcome_of(records):
    """DONE if the last kernel to run said so at the end, else NO_RESULT."""
    return DONE if any(r.step == "end" and r.key == "done" for r in records) \
        else NO_RESULT
