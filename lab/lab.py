"""Run one lab guest under QEMU and read what it reported.

Layers, as in kunit.py: lab/build.sh and lab/guest.sh build the kernel and
the initramfs; this module boots a guest under a hard timeout and parses the
records the guest writes to its own virtio-serial port (never the console);
tests/ and bench/ decide what the records must say.
"""

import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.join(TOP, "build")
EFI_FW = "/usr/share/qemu-efi-aarch64/QEMU_EFI.fd"

# base and series, plus the series built with each config/NAME.config on top
VARIANTS = {
    "base": os.path.join(BUILD, "linux-base", "_out"),
    "series": os.path.join(BUILD, "linux", "_out"),
}
VARIANTS.update({
    f[:-len(".config")]: os.path.join(BUILD, "linux", "_out-" + f[:-len(".config")])
    for f in sorted(os.listdir(os.path.join(TOP, "config")))
    if f.endswith(".config") and f != "lab.config"})

# Outcomes of a guest run.
DONE = "done"            # the guest said "done" at the end of its steps
NO_RESULT = "no-result"  # it hung, or died without its final record

_t0 = float(os.environ.get("LAB_T0", time.time()))


def progress(msg):
    print("[%4ds] %s" % (time.time() - _t0, msg), file=sys.stderr, flush=True)


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

    def first(self, step, key, default=None):
        for r in self.records:
            if r.step == step and r.key == key:
                return r.value
        return default

    def all(self, step, key):
        return [r.value for r in self.records if r.step == step and r.key == key]

    def map(self, step="boot", nth=0):
        """The crash_linear_map --report figures of the NTH run of STEP."""
        g = self.steps(step)[nth]
        out = {}
        for kv in g.get("map.crash_region", []):
            out.setdefault("crash_region", []).append(kv)
        for k, v in g.items():
            if k.startswith("map.") and k != "map.crash_region":
                out[k[4:]] = int(v[-1], 0) if re.fullmatch(r"-?(0x)?[0-9a-f]+", v[-1]) else v[-1]
        return out


_REC = re.compile(r"^(\d+):([\w.-]+):([\w.-]+)=(.*)$")


def parse_records(text):
    """Parse the guest's result channel: '<idx>:<step>:<key>=<value>' lines.

    Anything else (there should be nothing else) is ignored."""
    out = []
    for line in text.splitlines():
        m = _REC.match(line.rstrip("\r"))
        if m:
            out.append(Record(int(m.group(1)), m.group(2), m.group(3), m.group(4)))
    return out


def dma_limited_dtb(mem, bits):
    """QEMU virt's own device tree for MEM of RAM, plus a bus whose
    dma-ranges limit DMA to BITS address bits (as on the Raspberry Pi 4).
    The kernel takes the lowest such limit for ZONE_DMA."""
    out = os.path.join(BUILD, "dtb", "virt-%s-dma%d.dtb" % (mem, bits))
    if os.path.exists(out):
        return out
    os.makedirs(os.path.dirname(out), exist_ok=True)
    raw = out + ".orig"
    subprocess.run(["qemu-system-aarch64", "-M", "virt,dtb-kaslr-seed=off,dumpdtb=" + raw,
                    "-cpu", "max", "-m", mem, "-display", "none"],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    dts = subprocess.run(["dtc", "-q", "-I", "dtb", "-O", "dts", raw], check=True,
                         capture_output=True, text=True).stdout
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
    subprocess.run(["dtc", "-q", "-I", "dts", "-O", "dtb", "-o", out, "-"], input=dts,
                   check=True, text=True)
    os.unlink(raw)
    return out


def kernel_image(variant):
    if variant not in VARIANTS:
        raise SystemExit("error: unknown VARIANT %r (expected %s)" % (variant, ", ".join(VARIANTS)))
    img = os.path.join(VARIANTS[variant], "arch/arm64/boot/Image")
    if not os.path.exists(img):
        raise SystemExit("error: %s is missing; build it first (make build)" % img)
    return img


def qemu_command(variant, mem, cmdline, rundir, firmware="dt", icount=False,
                 smp=2, dtb=None, kernel=None):
    ird = os.path.join(BUILD, "initramfs", variant, "first.cpio.gz")
    if not os.path.exists(ird):
        raise SystemExit("error: %s is missing; run lab/guest.sh %s" % (ird, variant))
    machine = "virt,dtb-kaslr-seed=off"
    cmd = ["qemu-system-aarch64", "-M", machine, "-cpu", "max",
           "-smp", str(smp), "-m", mem,
           # Guest RAM is not reserved on the host: large guests fit.
           "-object", "memory-backend-ram,id=ram,size=%s,reserve=off" % mem,
           "-machine", "memory-backend=ram",
           "-display", "none", "-monitor", "none", "-no-reboot",
           "-serial", "file:" + os.path.join(rundir, "console.log"),
           "-kernel", kernel or kernel_image(variant), "-initrd", ird,
           "-append", cmdline,
           "-device", "virtio-serial-device",
           "-chardev", "file,id=lab,path=" + os.path.join(rundir, "results.txt"),
           "-device", "virtserialport,chardev=lab,name=lab"]
    if firmware == "uefi":
        cmd += ["-bios", EFI_FW]
    if dtb:
        cmd += ["-dtb", dtb]
    if icount:
        cmd += ["-icount", "shift=0,sleep=off"]
    return cmd


def run_guest(name, variant="series", mem="8G", cmdline="", steps=(),
              marker=None, firmware="dt", icount=False, timeout=300, smp=2,
              dtb=None, kernel=None):
    """Boot one guest and return its Result.  Never raises for guest trouble:
    a hang or a guest that dies without its final record is NO_RESULT.
    KERNEL boots another Image with VARIANT's initramfs (and capture kernel)."""
    rundir = os.path.join(BUILD, "runs", name)
    os.makedirs(rundir, exist_ok=True)
    for f in ("console.log", "results.txt"):
        p = os.path.join(rundir, f)
        if os.path.exists(p):
            os.unlink(p)
    marker = marker or "m%x" % (int(time.time() * 1000) & 0xffffffff)
    full = "console=ttyAMA0 panic=1 " + cmdline
    full += " lab.steps=%s lab.marker=%s" % (",".join(steps) or "none", marker)
    cmd = qemu_command(variant, mem, full.strip(), rundir, firmware, icount,
                       smp, dtb, kernel)
    with open(os.path.join(rundir, "qemu.cmd"), "w") as f:
        f.write(" ".join(shlex.quote(c) for c in cmd) + "\n")
    t = time.time()
    rc = None
    try:
        p = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        rc = p.returncode
        if rc:
            with open(os.path.join(rundir, "qemu.err"), "wb") as f:
                f.write(p.stdout)
    except subprocess.TimeoutExpired:
        pass
    secs = time.time() - t
    try:
        with open(os.path.join(rundir, "results.txt"), errors="replace") as f:
            recs = parse_records(f.read())
    except FileNotFoundError:
        recs = []
    return Result(name, outcome_of(recs), recs,
                  os.path.join(rundir, "console.log"), secs, rc)


def outcome_of(records):
    """DONE if the last kernel to run said so at the end, else NO_RESULT."""
    return DONE if any(r.step == "end" and r.key == "done" for r in records) \
        else NO_RESULT
