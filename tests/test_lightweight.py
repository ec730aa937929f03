"""Converting never imports a framework it does not need, and `formats` says what is missing."""

import json
import os
import subprocess
import sys

from click.testing import CliRunner

from modelport.cli import cli
from modelport.importers import registry

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEAVY = ("torch", "tensorflow", "keras", "tf_keras", "cv2", "mxnet", "onnxruntime")


def test_converting_onnx_imports_no_framework_and_not_even_onnxruntime(sample_onnx, tmp_path):
    code = (
        "import sys, modelport\n"
        "from modelport.importers.registry import detect_format, formats\n"
        f"formats(); modelport.convert({str(sample_onnx)!r}, {str(tmp_path / 'o.onnx')!r})\n"
        f"print([m for m in {HEAVY!r} if m in sys.modules])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_formats_says_which_extra_verification_needs(monkeypatch):
    monkeypatch.setattr(registry, "_installed", lambda module: module != "onnxruntime")
    result = CliRunner().invoke(cli, ["formats", "--json"])
    rows = {r["name"]: r for r in json.loads(result.output)}
    assert rows["onnx"]["verify"] == "needs modelport[cpu]"
    assert rows["onnx"]["convert"] == "ready"


def test_converting_leaves_sympy_and_the_reference_evaluator_unimported(sample_onnx, tmp_path):
    # onnx_ir imports SymPy eagerly and onnxscript's folder imports onnx.reference: ~0.5 s of
    # start-up that a conversion without symbolic arithmetic or reference folding never uses.
    code = (
        "import sys\n"
        "from modelport.cli import main\n"
        "from modelport._deferred import is_loaded\n"
        f"main(['convert', {str(sample_onnx)!r}, '-o', {str(tmp_path / 'o.onnx')!r}])\n"
        "print([m for m in ('sympy', 'onnx.reference', 'onnx.reference.ops') if is_loaded(m)])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_deferred_modules_load_when_used():
    # Symbolic dimension arithmetic needs SymPy, folding a Sin needs the reference
    # evaluator: both load on first use and compute the right thing.
    code = (
        "from modelport._deferred import defer_rarely_used\n"
        "defer_rarely_used()  # what the command line does first\n"
        "import modelport, numpy as np, onnx, onnx_ir as ir\n"
        "from onnx import helper as h, numpy_helper\n"
        "from modelport._deferred import is_loaded\n"
        "from modelport.graph_ir.passes import optimize\n"
        "assert not is_loaded('sympy')\n"
        "print(ir.SymbolicDim('N') * 2 + 1, is_loaded('sympy'))\n"
        "g = h.make_graph([h.make_node('Sin', ['c'], ['s']), h.make_node('Add', ['x', 's'], ['y'])],"
        " 'g', [h.make_tensor_value_info('x', 1, [2])], [h.make_tensor_value_info('y', 1, [2])],"
        " [numpy_helper.from_array(np.array([1, 2], np.float32), 'c')])\n"
        "m = ir.from_proto(h.make_model(g, opset_imports=[h.make_opsetid('', 17)]))\n"
        "optimize(m, 1)\n"
        "c = [v for v in m.graph.initializers.values()][0].const_value.numpy()\n"
        "print([n.op_type for n in m.graph], np.allclose(c, np.sin([1, 2])),"
        " is_loaded('onnx.reference.ops'))\n"
        "import sympy, onnx.reference\n"
        "print(sympy.Integer(3) + 1, onnx.reference.ReferenceEvaluator.__name__)\n"
        # onnxscript's __init__ did not run for the optimizer; it runs on the first read of
        # a name it defines, and its script front end then works
        "import onnxscript\n"
        "print(is_loaded('onnxscript'), is_loaded('onnxscript.onnx_opset'))\n"
        "print(onnxscript.opset17.version, is_loaded('onnxscript'),"
        " onnxscript.optimizer is sys.modules['onnxscript.optimizer'])\n"
    )
    r = subprocess.run([sys.executable, "-c", "import sys\n" + code], capture_output=True,
                       text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split("\n")[:5] == [
        "2*N + 1 True", "['Add'] True True", "4 ReferenceEvaluator", "False False",
        "17 True True"]


def test_eager_imports_switch(sample_onnx, tmp_path):
    code = ("import sys\n"
            "from modelport._deferred import defer_rarely_used\n"
            "defer_rarely_used()\n"
            "import onnx_ir\n"
            "print(type(sys.modules['sympy']).__name__)\n")
    env = dict(os.environ, MODELPORT_EAGER_IMPORTS="1")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                       env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "module"


def test_importing_modelport_leaves_other_libraries_alone():
    # A library user's `import sympy` gets SymPy itself, not a stand-in of ours.
    code = ("import sys, modelport, onnx_ir\n"
            "modelport.convert\n"
            "import sympy\n"
            "print(type(sys.modules['sympy']).__name__, sympy.Integer(2) + 1)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "module 3"


def test_version_is_defined_once():
    import modelport

    text = open(os.path.join(ROOT, "pyproject.toml")).read()
    assert 'dynamic = ["version"]' in text and "\nversion =" not in text.split("[tool")[0]
    from importlib.metadata import version

    assert version("modelport") == modelport.__version__


# Modules that take a large share of a small conversion to import and that converting a Keras
# file never needs (sympy and onnx.reference are deferred: is_loaded tells the real one).
# onnxscript's __init__ (its script front end and opset modules) is deferred by the command
# line too, and the -O2 pass modules (rule sets built on import) are imported for -O2 only.
SLOW = ("tensorflow", "keras", "tf_keras", "torch", "jax", "scipy", "sympy", "pandas",
        "matplotlib", "cv2", "mxnet", "onnxruntime", "onnx.reference", "onnxscript",
        "onnxscript.onnx_opset", "onnxscript._internal.main",
        "modelport.graph_ir.passes.patterns", "modelport.graph_ir.passes.shapes")


def test_converting_a_keras_file_imports_no_slow_module(tmp_path):
    h5 = os.path.join(ROOT, "tests", "fixtures", "theano", "k2_cnn_last.h5")
    code = (
        "import sys\n"
        "from modelport.cli import main\n"
        "from modelport._deferred import is_loaded\n"
        f"try: main(['convert', {h5!r}, '-o', {str(tmp_path / 'o.onnx')!r}, '--quiet'])\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        f"print([m for m in {SLOW!r} if is_loaded(m)])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "o.onnx").stat().st_size > 0


def test_command_exits_fast_with_its_status_output_and_exit_handlers(sample_onnx, tmp_path):
    # python -m modelport ends with os._exit after the command (no interpreter teardown):
    # the exit status, everything printed and the atexit handlers must survive that.
    marker = tmp_path / "atexit-ran"
    code = (
        "import atexit, sys\n"
        f"atexit.register(lambda: open({str(marker)!r}, 'w').close())\n"
        "sys.argv = ['modelport'] + sys.argv[1:]\n"
        "from modelport.cli import run\n"
        "run()\n"
    )
    out = tmp_path / "o.onnx"
    ok = subprocess.run([sys.executable, "-c", code, "convert", str(sample_onnx), "-o", str(out),
                         "--json"], capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["passed"] is True and out.stat().st_size > 0
    assert marker.exists()
    marker.unlink()
    bad = subprocess.run([sys.executable, "-c", code, "convert", str(tmp_path / "none.h5"),
                          "-o", str(out), "--force"], capture_output=True, text=True, cwd=ROOT)
    assert bad.returncode == 2 and "none.h5" in bad.stderr and marker.exists()


def test_deferred_package_init_keeps_submodules_reachable_as_attributes():
    """With onnxscript's __init__ deferred (the command line does it), a submodule imported
    first (the optimizer's `onnxscript.ir`...) is still an attribute of the package, before
    and after the real __init__ ran: torch.onnx reads `onnxscript.onnx_types.TensorType`."""
    code = (
        "import sys, importlib\n"
        "from modelport._deferred import defer_package_init, is_loaded\n"
        "assert defer_package_init('onnxscript')\n"
        "import onnxscript.onnx_types, onnxscript.optimizer\n"
        "assert not is_loaded('onnxscript')\n"
        "pkg = importlib.import_module('onnxscript')\n"
        "a = pkg.onnx_types.TensorType\n"
        "real = pkg.script and sys.modules['onnxscript']\n"  # a name only __init__ defines
        "assert is_loaded('onnxscript')\n"
        "print(real.onnx_types.TensorType is a, real.optimizer is sys.modules["
        "'onnxscript.optimizer'], pkg.ir is sys.modules['onnxscript.ir'])\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["True", "True", "True"]
