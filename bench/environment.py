"""Describe the machine and the software versions a run used."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pynetdicom

from bench.procs import dcmtk, which
from bench.settings import REPO_DIR


@dataclass(frozen=True)
class Environment:
    """What the figures were measured on."""

    cpus: int
    cpu_model: str
    memory_gb: float
    kernel: str
    python: str
    hounsfield: str
    orthanc: str
    dcmtk: str
    pydicom: str
    pynetdicom: str


def _first_line(args: list[str]) -> str:
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unknown ({exc})"
    lines = (out.stdout or out.stderr).strip().splitlines()
    return lines[0].strip() if lines else "unknown"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except (OSError, ValueError):
        pass
    return 0.0


def _hounsfield_version() -> str:
    from hounsfield import __version__

    commit = _first_line(["git", "-C", str(REPO_DIR), "rev-parse", "--short", "HEAD"])
    dirty = _first_line(["git", "-C", str(REPO_DIR), "status", "--porcelain", "--", "hounsfield"])
    suffix = "" if dirty in ("", "unknown") else ", with uncommitted changes"
    return f"{__version__} (git {commit}{suffix})"


def _orthanc_version() -> str:
    try:
        return _first_line([which("Orthanc"), "--version"]).split()[-1]
    except SystemExit:  # only the parts that start the servers need it
        return "not installed"


def _dcmtk_version() -> str:
    try:
        line = _first_line([dcmtk("storescu"), "--version"])
    except SystemExit:
        return "not installed"
    found = re.search(r"v(\d+\.\d+\.\d+)", line)
    return found.group(1) if found else line


def describe() -> Environment:
    """Collect the machine and version facts."""
    return Environment(
        cpus=os.cpu_count() or 0,
        cpu_model=_cpu_model(),
        memory_gb=_memory_gb(),
        kernel=platform.release(),
        python=platform.python_version(),
        hounsfield=_hounsfield_version(),
        orthanc=_orthanc_version(),
        dcmtk=_dcmtk_version(),
        pydicom=pydicom.__version__,
        pynetdicom=pynetdicom.__version__,
    )
