"""The boundaries of design.md, checked on the source: who may import whom, and where the
metadata keys are spelt."""

import ast
import json
import os
import re

import onnx

from modelport.graph_ir import metadata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = os.path.join(ROOT, "modelport")


def _modules():
    for folder, _, files in os.walk(PACKAGE):
        if "_pb" in folder.split(os.sep) or "__pycache__" in folder:
            continue
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                rel = os.path.relpath(path, ROOT)[:-3].replace(os.sep, ".")
                yield rel.removesuffix(".__init__"), path


def _imports(path):
    tree = ast.parse(open(path, encoding="utf-8").read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            yield node.module
            yield from (f"{node.module}.{a.name}" for a in node.names)


def _violations(importer_prefix, forbidden):
    found = []
    for module, path in _modules():
        if module.startswith(importer_prefix):
            found += [f"{module} imports {m}" for m in _imports(path)
                      if any(m == f or m.startswith(f + ".") for f in forbidden)]
    return found


def test_importers_never_import_exporters_or_the_pipeline():
    assert _violations("modelport.importers", ["modelport.exporters", "modelport.convert"]) == []


def test_graph_ir_imports_only_itself_and_leaf_modules():
    # Not the package face (modelport/__init__.py, which imports the API), nor a stage.
    assert _violations("modelport.graph_ir", [
        "modelport.importers", "modelport.exporters", "modelport.convert", "modelport.cli",
        "modelport.__version__"]) == []
    for _, path in _modules():
        if os.sep + "graph_ir" + os.sep in path:
            assert "modelport" not in list(_imports(path)), path


def test_metadata_keys_are_spelt_only_in_graph_ir_metadata():
    key = re.compile(r"""["']modelport\.[a-z_]+(\.[a-z_]+)?["']""")
    spelt = []
    for module, path in _modules():
        if module == "modelport.graph_ir.metadata":
            continue
        for n, line in enumerate(open(path, encoding="utf-8"), 1):
            code = line.split("#")[0]
            for m in key.finditer(code):
                name = m.group(0)[1:-1]
                # module names in import strings and resources are not metadata keys
                if not os.path.exists(os.path.join(ROOT, *name.split("."))) and not \
                        os.path.exists(os.path.join(ROOT, *name.split(".")) + ".py"):
                    spelt.append(f"{module}:{n}: {name}")
    assert spelt == []


def test_a_converted_file_carries_the_keys_verification_reads(tmp_path):
    # The keys are a file format: the writer (pipeline) and the reader (verify) agree because
    # both take them from graph_ir.metadata; the strings themselves must not drift either.
    from modelport.cli import main
    from modelport.convert.verify import layer_map

    h5 = os.path.join(ROOT, "tests", "fixtures", "theano", "k2_cnn_last.h5")
    out = tmp_path / "o.onnx"
    try:
        main(["convert", h5, "-o", str(out), "--quiet"])
    except SystemExit as e:
        assert not e.code
    proto = onnx.load(str(out))
    props = {p.key: p.value for p in proto.metadata_props}
    assert metadata.LAYER_MAP_KEY == "modelport.layer_outputs"
    assert props[metadata.FORMAT_KEY] == "keras"
    assert layer_map(proto) == json.loads(props["modelport.layer_outputs"]) != {}
    sources = {p.value for n in proto.graph.node for p in n.metadata_props
               if p.key == "modelport.source"}
    skips = json.loads(props.get(metadata.LAYER_SKIPS_KEY, "{}"))
    assert sources and sources <= set(layer_map(proto)) | set(skips)


def test_the_product_never_imports_test_helpers():
    # Test-only code (e.g. the caffemodel writer, tests/oracles/caffe_write.py) stays out of
    # the installed package, so nothing in it may need it.
    assert _violations("modelport", ["tests", "benchmarks", "examples"]) == []


TRANSLATOR_PACKAGES = {"caffe": "layers", "tensorflow": "ops", "mxnet": "ops",
                       "torch7": "modules", "keras": "layers"}


def test_every_importer_discovers_its_translators_one_way():
    # optable.load_translators imports every module of the package: no importer keeps a list
    # (a module added to the folder registers without touching anything else).
    import importlib
    import pkgutil
    import sys

    for fmt, package in TRANSLATOR_PACKAGES.items():
        load = importlib.import_module(f"modelport.importers.{fmt}.load")
        if fmt == "keras":
            load.load_translators()
        source = open(load.__file__, encoding="utf-8").read()
        assert f'load_translators("modelport.importers.{fmt}.{package}")' in source, fmt
        pkg = importlib.import_module(f"modelport.importers.{fmt}.{package}")
        names = [i.name for i in pkgutil.iter_modules(pkg.__path__) if not i.name.startswith("_")]
        assert names and all(f"{pkg.__name__}.{n}" in sys.modules for n in names), fmt
