"""`make test-lowest` installs the lowest versions that pyproject.toml's dependency ranges
admit (constraints-lowest.txt) and runs the framework-free part of the suite
(tests/framework_free.args) against them: both files must stay in step with the project."""

from __future__ import annotations

import os
import sys

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # tomli is a core dependency below 3.11
    import tomli as tomllib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The extras the lowest environment installs besides the core (Makefile, test-lowest).
LOWEST_EXTRAS = ("cpu", "caffe")


def _project() -> dict:
    with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
        return tomllib.load(f)["project"]


def _constraints() -> dict[str, Requirement]:
    pins = {}
    with open(os.path.join(ROOT, "constraints-lowest.txt")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                req = Requirement(line)
                pins[canonicalize_name(req.name)] = req
    return pins


def _floor(req: Requirement) -> Version:
    """The lowest version ``req`` admits: its ``==`` pin or its ``>=`` bound."""
    bounds = [Version(s.version) for s in req.specifier if s.operator in ("==", ">=")]
    assert len(bounds) == 1, f"{req}: give one lower bound (>=) or one exact pin (==)"
    return bounds[0]


def test_constraints_pin_every_lower_bound():
    project = _project()
    wanted = [Requirement(r) for r in project["dependencies"]]
    for extra in LOWEST_EXTRAS:
        wanted += [Requirement(r) for r in project["optional-dependencies"][extra]]
    pins = _constraints()
    for req in wanted:
        name = canonicalize_name(req.name)
        assert name in pins, f"constraints-lowest.txt has no pin for {req.name}"
        pin = pins[name]
        (spec,) = pin.specifier
        got = Version(spec.version)
        assert spec.operator == "==" and got in req.specifier, f"{pin} is outside {req}"
        floor = _floor(req)
        # The floor itself, or the first release of its series where the floor names only a
        # prefix (opencv-python-headless>=4.8: 4.8.0.74 is yanked, 4.8.0.76 is the first).
        assert got.release[:len(floor.release)] == floor.release, \
            f"{pin} is not the lowest version {req} admits"
        assert str(pin.marker or "") == str(req.marker or ""), f"{pin}: marker differs"
    assert set(pins) == {canonicalize_name(r.name) for r in wanted}, \
        "constraints-lowest.txt pins something pyproject.toml does not ask for"


def test_framework_free_subset_names_existing_tests():
    with open(os.path.join(ROOT, "tests", "framework_free.args")) as f:
        args = [line.strip() for line in f if line.strip()]
    assert args
    for arg in args:
        path = arg.split("=", 1)[1] if arg.startswith("--deselect=") else arg
        assert os.path.exists(os.path.join(ROOT, path.split("::", 1)[0])), arg
