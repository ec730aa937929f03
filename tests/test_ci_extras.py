"""CI (`make test`, `.ci/run`) installs every extra that the suite tests, so that no test can
be skipped or missing for want of a framework (an unexpected skip fails the session anyway:
tests/skip_policy.py)."""

from __future__ import annotations

import os
import re

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Extras CI cannot install, with the reason.
NOT_IN_CI = {
    "gpu": "onnxruntime-gpu needs an NVIDIA GPU and replaces the onnxruntime CPU wheel (CI "
           "installs the `cpu` runtime extra instead)",
}


def _pyproject() -> str:
    # Read as text: tomllib is not in Python 3.10, which the project supports.
    with open(os.path.join(ROOT, "pyproject.toml")) as f:
        return f.read()


def test_make_test_installs_every_extra():
    section = _pyproject().split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    extras = set(re.findall(r"^([A-Za-z0-9_-]+) *=", section, re.M))
    assert {"keras", "caffe", "pytorch"} <= extras
    with open(os.path.join(ROOT, "Makefile")) as f:
        makefile = f.read()
    installed = set(re.search(r"^EXTRAS \?= *(\S+)", makefile, re.M).group(1).split(","))
    assert extras - set(NOT_IN_CI) <= installed, "add these to EXTRAS in the Makefile"
    assert "make test" in open(os.path.join(ROOT, ".ci", "run")).read()


def test_ci_runs_pytest_with_the_skip_report():
    addopts = re.search(r"^addopts *= *(.*)$", _pyproject(), re.M).group(1)
    # -ra reports every outcome but passes, skips (with their reasons) included.
    assert re.search(r"-r[a-zA-Z]*[as]", addopts)


def test_cpu_and_gpu_runtimes_are_separate_extras():
    # onnxruntime and onnxruntime-gpu both provide the onnxruntime module: no extra and no
    # core dependency may pull the CPU package beside the GPU one.
    text = _pyproject()
    core = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert "onnxruntime" not in core
    section = text.split("[project.optional-dependencies]", 1)[1].split("\n[", 1)[0]
    for line in section.splitlines():
        name = line.split("=", 1)[0].strip()
        if "onnxruntime" in line and not line.lstrip().startswith("#"):
            assert name in ("cpu", "gpu"), line
