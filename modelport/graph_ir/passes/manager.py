"""The pass manager: runs the passes of a level to a fixed point.

-O0 runs nothing. -O1 (default) inlines functions, then repeats [constant folding, the default
rewrite rules, registered project passes, clean-up] until nothing changes (at most
``MAX_ROUNDS`` rounds; a pass that found nothing is skipped until another pass changes the
graph). -O2 adds the extra rule sets of :mod:`.fusions`. Passes registered as ``closing`` run
only at the fixed point (and the rounds go on when they change the graph); where the rounds
end at ``MAX_ROUNDS`` without one, they do not run.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import onnx_ir as ir
import onnx_ir.passes.common as common

from modelport.graph_ir.metadata import TARGET_OPSET_KEY
from modelport.graph_ir.passes.cleanup import cleanup_passes, final_passes, inline_passes
from modelport.graph_ir.passes.folding import folding_passes
from modelport.graph_ir.passes.fusions import fusion_passes
from modelport.graph_ir.passes.outputs import SubgraphAwareOutputFixPass

MAX_ROUNDS = 8

# (min level, factory) for passes that the project adds on top of onnx_ir/onnxscript.
_REGISTERED: list[tuple[int, str, Callable[[], ir.passes.PassBase]]] = []


_LATE: set[str] = set()
_CLOSING: set[str] = set()


def register_pass(level: int, name: str | None = None, *, late: bool = False,
                  closing: bool = False):
    """Decorator: run the pass built by ``factory()`` at ``level`` and above.

    ``late``: run it after the other registered passes of each round. The layout pass is late:
    it moves Transposes, which would otherwise hide patterns that other passes recognise (the
    Reshape → Transpose → Squeeze → Gather of a packed q/k/v, for one).

    ``closing``: run it only once the other passes have reached their fixed point (the rounds
    go on if it changes the graph). For rewrites that trade the operators other passes look
    for against ones a runtime prefers (N-D dense layers as 2-D Gemms: :mod:`.dense`), and
    that decide by the node count of the graph as the other passes leave it."""

    def decorate(factory: Callable[[], ir.passes.PassBase]):
        label = name or factory.__name__
        _REGISTERED.append((level, label, factory))
        if late:
            _LATE.add(label)
        if closing:
            _CLOSING.add(label)
        return factory

    return decorate


@dataclasses.dataclass
class PassStats:
    """What one pass did over all rounds: nodes it removed and added (net change of the node
    count per run, summed by sign, counting the nodes it left without a use as removed) and
    rewrites (rule applications, or values replaced, as the
    pass counts them; runs that changed the graph for passes that do not count)."""

    runs: int = 0
    removed: int = 0
    added: int = 0
    rewrites: int = 0
    seconds: float = 0.0


@dataclasses.dataclass
class OptimizeReport:
    level: int
    rounds: int = 0
    nodes_before: int = 0
    nodes_after: int = 0
    seconds: float = 0.0
    passes: dict[str, PassStats] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["passes"] = {k: v for k, v in d["passes"].items()
                       if v["removed"] or v["added"] or v["rewrites"]}
        return d


# Standard operators that hold subgraphs; nodes of other domains may too.
_SUBGRAPH_OPS = frozenset({"If", "Loop", "Scan", "SequenceMap"})


def _count_graph(graph: ir.Graph) -> int:
    n = len(graph)
    for node in graph:
        if node.op_type not in _SUBGRAPH_OPS and node.domain in ("", "ai.onnx"):
            continue
        for attr in node.attributes.values():
            if attr.type == ir.AttributeType.GRAPH:
                n += _count_graph(attr.value)
            elif attr.type == ir.AttributeType.GRAPHS:
                n += sum(_count_graph(g) for g in attr.value)
    return n


def _count(model: ir.Model) -> int:
    """Nodes of the main graph and its subgraphs (what ``graph.all_nodes()`` yields, counted
    without its generic iterator: the manager counts before and after every pass)."""
    return _count_graph(model.graph)


def _pass_name(p: ir.passes.PassBase) -> str:
    return getattr(p, "report_name", None) or type(p).__name__


def _run(p: ir.passes.PassBase, model: ir.Model, report: OptimizeReport) -> bool:
    stats = report.passes.setdefault(_pass_name(p), PassStats())
    before = _count(model)
    start = time.perf_counter()
    modified = p(model).modified
    if modified and not isinstance(p, common.RemoveUnusedNodesPass):
        # the nodes a rewrite leaves without a use are counted as that pass's removals
        common.RemoveUnusedNodesPass()(model)
    stats.seconds += time.perf_counter() - start
    after = _count(model)
    stats.runs += 1
    stats.removed += max(0, before - after)
    stats.added += max(0, after - before)
    counted = getattr(p, "rewrites", None)
    stats.rewrites += counted if isinstance(counted, int) else int(modified)
    return modified


def optimize(model: ir.Model, level: int = 1, target_opset: int | None = None) -> OptimizeReport:
    """Optimise ``model`` in place at ``level`` (0, 1 or 2).

    ``target_opset``: the opset the model will be written at, when the exporter converts it
    afterwards; passes that emit newer operators (LayerNormalization, Gelu) hold back when the
    target cannot express them (they read it from ``model.meta[TARGET_OPSET_KEY]``).
    """
    report = OptimizeReport(level=level, nodes_before=_count(model))
    if target_opset is not None:
        model.meta[TARGET_OPSET_KEY] = target_opset
    start = time.perf_counter()
    if level > 0:
        # Rewrites may replace a graph output's Value with a new one; the output keeps its
        # name and position, and gets back the metadata (e.g. modelport.source_perm) here.
        output_meta = [(v.name, dict(v.metadata_props)) for v in model.graph.outputs]
        input_names = [v.name for v in model.graph.inputs]
        _load_project_passes(level)
        for p in inline_passes():
            _run(p, model, report)
        round_passes: list[ir.passes.PassBase] = [
            *folding_passes(level),
            *fusion_passes(level, model.opset_imports.get("")),
            *(_named(factory(), name) for lvl, name, factory in
              sorted(_REGISTERED, key=lambda r: r[1] in _LATE)
              if level >= lvl and name not in _CLOSING),
            *cleanup_passes(),
        ]
        closing = [_named(factory(), name) for lvl, name, factory in _REGISTERED
                   if level >= lvl and name in _CLOSING]
        # A pass that found nothing to do is not run again until another pass has changed
        # the graph (the passes are deterministic: on the same graph it would find nothing).
        version = 0  # bumped by every run that changes the graph
        idle_at: dict[int, int] = {}  # id(pass) -> version at its last run that changed nothing

        def run_each(passes: list[ir.passes.PassBase]) -> bool:
            """Run each pass not idle at this version; whether any changed the graph."""
            nonlocal version
            changed = False
            for p in passes:
                if idle_at.get(id(p)) == version:
                    continue
                if _run(p, model, report):
                    version += 1
                    changed = True
                else:
                    idle_at[id(p)] = version
            return changed

        for rounds in range(1, MAX_ROUNDS + 1):
            changed = run_each(round_passes)
            report.rounds = rounds
            # at the fixed point, the closing passes' turn; the rounds go on if they changed it
            if not changed and not run_each(closing):
                break
        for p in final_passes():
            _run(p, model, report)
        # Identity elimination may leave a graph (or subgraph) output that is an input or
        # appears twice; ONNX forbids both, and onnxruntime mis-executes some of them.
        # (Loop/Scan bodies may pass an input straight through: outputs.py.)
        SubgraphAwareOutputFixPass()(model)
        # The graph's inputs and outputs are its interface: merging two outputs that compute the
        # same value (CSE), eliminating an Identity or the fix above may have renamed them.
        _restore_io_names(model, input_names, [name for name, _ in output_meta])
        common.TopologicalSortPass()(model)
        for value, (name, meta) in zip(model.graph.outputs, output_meta):
            if value.name == name:
                for key, text in meta.items():
                    value.metadata_props.setdefault(key, text)
    report.nodes_after = _count(model)
    report.seconds = time.perf_counter() - start
    return report


def _restore_io_names(model: ir.Model, inputs: list[str], outputs: list[str]) -> None:
    """Give the main graph's inputs and outputs back the names they had before optimising.

    Each output position holds its own value here (OutputFixPass made them distinct and none is
    an input). A value of the graph that holds a wanted name without being the input or output
    it belongs to gets a fresh name first."""
    graph = model.graph
    wanted = dict(zip(graph.inputs, inputs))
    wanted.update((v, n) for v, n in zip(graph.outputs, outputs) if v not in wanted)
    if all(v.name == n for v, n in wanted.items()):
        return
    values: list[ir.Value] = []
    for g in (graph, *graph.subgraphs()):
        values.extend(g.inputs)
        values.extend(g.initializers.values())
        for node in g:
            values.extend(node.outputs)
    names = {v.name for v in values}
    targets = set(wanted.values())
    fresh = 0
    for v in values:
        if v.name in targets and wanted.get(v) != v.name:
            while f"{v.name}_{fresh}" in names:
                fresh += 1
            v.name = f"{v.name}_{fresh}"
            names.add(v.name)
    for v, name in wanted.items():
        v.name = name


def _named(p: ir.passes.PassBase, name: str) -> ir.passes.PassBase:
    if getattr(p, "report_name", None) is None:
        p.report_name = name  # type: ignore[attr-defined]
    return p


# The modules whose passes register themselves, by the lowest level they register a pass at:
# a level's run imports only the modules it needs (building some modules' rule sets costs a
# quarter of a second; -O1 needs only the layout pass). tests/graph_ir/test_manager.py checks
# this table against what each module registers.
PASS_MODULES = {
    "layout": 1,
    "conv": 2,
    "dense": 2,
    "linear": 2,
    "noops": 2,
    "patterns": 2,
    "recurrent": 2,
    "shapes": 2,
}


def _load_project_passes(level: int = 2) -> None:
    """Import the modules whose passes register themselves at ``level`` or below."""
    import importlib

    for module, lowest in PASS_MODULES.items():
        if lowest <= level:
            importlib.import_module(f"modelport.graph_ir.passes.{module}")
