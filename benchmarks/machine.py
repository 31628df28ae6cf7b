"""Describe the machine a benchmark ran on, for the header of its results section."""

import datetime
import logging
import os
import platform
import shlex
import sys
from pathlib import Path


def cpu_model() -> str:
    """CPU model name from /proc/cpuinfo (Linux), else the platform's processor string."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    """Total RAM in GiB."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30


def gpu_name() -> str:
    """The CUDA device name, or 'no GPU'."""
    try:
        import torch

        return torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    except Exception:
        return "no GPU"


def header(title: str) -> str:
    """Markdown header: title, the exact command, the machine and the date."""
    command = " ".join(shlex.quote(a) for a in [Path(sys.executable).name, *sys.argv])
    return (f"## {title}\n\n"
            f"- command: `{command}`\n"
            f"- machine: {os.cpu_count()} cores ({cpu_model()}), {memory_gib():.0f} GiB RAM, "
            f"{gpu_name()}; Python {platform.python_version()}\n"
            f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC\n")


def write_section(path: Path, text: str) -> None:
    """Write one benchmark's results section (run_all.py assembles RESULTS.md from them)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    logging.getLogger("benchmarks").info("wrote %s\n%s", path, text)
