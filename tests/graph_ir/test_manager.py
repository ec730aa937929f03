"""The pass manager imports only the pass modules a level needs: its table of modules and the
lowest level each registers a pass at must match what the modules really register."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from modelport.graph_ir.passes import manager

PASSES_DIR = Path(manager.__file__).parent


def test_pass_module_table_matches_the_registrations():
    declared = {p.stem for p in PASSES_DIR.glob("*.py")
                if "@register_pass(" in p.read_text(encoding="utf-8")}
    assert declared == set(manager.PASS_MODULES), "manager.PASS_MODULES is out of date"
    for module in manager.PASS_MODULES:
        importlib.import_module(f"modelport.graph_ir.passes.{module}")
    lowest: dict[str, int] = {}
    for level, _name, factory in manager._REGISTERED:
        module = factory.__module__.rsplit(".", 1)[-1]
        lowest[module] = min(level, lowest.get(module, level))
    assert lowest == manager.PASS_MODULES


def test_levels_below_a_module_do_not_import_it():
    # A fresh interpreter: -O1 needs the layout pass only, not the -O2 rule sets.
    code = ("import json, sys\n"
            "from modelport.graph_ir.passes import manager\n"
            "manager._load_project_passes(1)\n"
            "print(json.dumps([m.rsplit('.', 1)[-1] for m in sys.modules\n"
            "                  if m.startswith('modelport.graph_ir.passes.')]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=str(PASSES_DIR.parents[2])).stdout
    loaded = set(json.loads(out))
    assert "layout" in loaded
    assert not loaded & {m for m, lvl in manager.PASS_MODULES.items() if lvl > 1}, loaded
