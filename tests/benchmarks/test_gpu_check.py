"""`benchmarks/gpu_check.sh --dry-run` works on a machine without a GPU, so the real check is known to
run before a GPU machine is lent: every part's section is in the one results file, the CPU parts
measured something, the GPU-only parts say why they were skipped."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_dry_run_writes_every_section(tmp_path):
    script = ROOT / "benchmarks" / "gpu_check.sh"
    run = subprocess.run(["bash", str(script), "--dry-run", "--out", str(tmp_path)], capture_output=True,
                         text=True, timeout=900, check=False)
    text = (tmp_path / "gpu_check.md").read_text()
    assert run.returncode == 0 and "FAILED" not in text, text + run.stderr
    for title in ("Environment", "FM inference from slides vs the bare forward",
                  "JPEG tile decoding: GPU vs CPU", "LoRA fine-tuning throughput"):
        assert f"### {title}" in text
    assert "skipped: no CUDA device" in text
    rates = [float(v) for v in re.findall(r"\| (\d+\.\d) \|", text)]
    assert len(rates) >= 4 and all(rate > 0 for rate in rates)  # bare, from slides, CPU decode, LoRA
