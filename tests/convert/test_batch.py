"""`modelport batch`: a manifest of real models (Keras, Caffe, PyTorch, ONNX), one that fails
verification, one corrupt file and one whose process dies; shards, jobs and the reports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import onnx
import pytest

from modelport.convert.batch import ManifestError, in_shard, parse_shard, read_manifest
from modelport.errors import ModelportError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

CAFFE_NET = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "ip1" type: "InnerProduct" bottom: "conv1" top: "ip1"
        inner_product_param { num_output: 5 } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""

KILLER = """
import os
import signal


def make():
    os.kill(os.getpid(), signal.SIGKILL)
"""


def cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelport", *map(str, args)],
                          capture_output=True, text=True, cwd=cwd or ROOT)


def _light_models(folder, sample_onnx):
    """ONNX, Caffe, a failing and a corrupt model: quick to convert."""
    from tests.oracles.caffe_write import random_caffemodel

    (folder / "models").mkdir(exist_ok=True)
    onnx.save(onnx.load(sample_onnx), folder / "models" / "sample.onnx")
    (folder / "models" / "tiny.prototxt").write_text(CAFFE_NET)
    random_caffemodel(folder / "models" / "tiny.prototxt", folder / "models" / "tiny.caffemodel",
                      seed=2)
    (folder / "models" / "corrupt.onnx").write_bytes(b"\x08\x07" + b"\xff" * 64)
    return """
[defaults]
rtol = 1e-3
atol = 1e-4

[[model]]
source = "models/sample.onnx"

[[model]]
name = "caffe-tiny"
source = "models/tiny.prototxt"
weights = "models/tiny.caffemodel"
per_layer = true

[[model]]
name = "too-strict"          # BatchNorm folded into Conv changes rounding: 0 tolerance fails
source = "models/sample.onnx"
rtol = 0.0
atol = 0.0

[[model]]
name = "corrupt"
source = "models/corrupt.onnx"
"""


@pytest.fixture(scope="module")
def full_manifest(tmp_path_factory, request):
    """The light models plus a Keras .h5, a PyTorch .pt2 and an entry point that dies."""
    folder = tmp_path_factory.mktemp("batch")
    sample = folder / "s.onnx"
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        import make_sample
    finally:
        sys.path.pop(0)
    onnx.save(make_sample.build(), sample)
    text = _light_models(folder, sample)

    import tf_keras as keras

    x = keras.Input((6,), name="x")
    model = keras.Model(x, keras.layers.Dense(3, activation="tanh", name="d")(
        keras.layers.Dense(8, activation="relu", name="h")(x)))
    model.save(folder / "models" / "mlp.h5")

    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 3)

        def forward(self, x):
            return torch.sigmoid(self.fc(x))

    torch.manual_seed(0)
    ep = torch.export.export(Net().eval(), (torch.randn(2, 4),))
    torch.export.save(ep, folder / "models" / "net.pt2")
    (folder / "killer.py").write_text(KILLER)
    text += """
[[model]]
source = "models/mlp.h5"
per_layer = true

[[model]]
source = "models/net.pt2"

[[model]]
name = "dies"
source = "killer:make"
input = ["x:1,4"]
"""
    manifest = folder / "models.toml"
    manifest.write_text(text)
    return manifest


EXPECTED = {"sample": "passed", "caffe-tiny": "passed", "too-strict": "failed",
            "corrupt": "error", "mlp": "passed", "net": "passed", "dies": "error"}


@pytest.fixture(scope="module")
def full_run(full_manifest, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    r = cli("batch", full_manifest, "--out-dir", out / "onnx", "--jobs", "2",
            "--junit", out / "r.xml", "--json", out / "r.json", "--html", out / "r.html",
            "--timeout", "300")
    return r, out


def test_every_model_gets_its_status_and_the_exit_code_is_the_worst(full_run):
    r, out = full_run
    assert r.returncode == 2, r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == len(EXPECTED) + 1, r.stderr  # one line per model, then the summary
    assert lines[-1].startswith("4 passed, 1 failed, 2 errors (7 models)")
    doc = json.loads((out / "r.json").read_text())
    assert {m["name"]: m["status"] for m in doc["models"]} == EXPECTED
    assert doc["totals"]["passed"] == 4 and doc["totals"]["error"] == 2
    by_name = {m["name"]: m for m in doc["models"]}
    assert "died" in by_name["dies"]["error"] and "SIGKILL" in by_name["dies"]["error"]
    assert "corrupt.onnx" in by_name["corrupt"]["error"]
    assert "verification failed" in by_name["too-strict"]["error"]
    assert by_name["mlp"]["report"]["layers"]  # per-layer results carried over
    for name, status in EXPECTED.items():
        exists = (out / "onnx" / f"{name}.onnx").exists()
        # as with `convert --verify`, only a model that passed leaves its file
        assert exists == (status == "passed"), name


def test_junit_has_one_testcase_per_model_with_failures_and_errors(full_run):
    _, out = full_run
    root = ET.parse(out / "r.xml").getroot()
    _check_junit_structure(root)
    suite = root.find("testsuite")
    assert suite.get("tests") == "7" and suite.get("failures") == "1" and \
        suite.get("errors") == "2"
    cases = {tc.get("name"): tc for tc in suite.findall("testcase")}
    assert set(cases) == set(EXPECTED)
    assert cases["too-strict"].find("failure") is not None
    assert "probs" in cases["too-strict"].find("failure").get("message")
    assert cases["corrupt"].find("error") is not None
    assert cases["dies"].find("error") is not None
    assert cases["sample"].find("failure") is None and cases["sample"].find("error") is None


def _check_junit_structure(root):
    """The structure of the JUnit schema CI systems read (Jenkins/Ant junit XSD): testsuites
    > testsuite(name, tests, failures, errors, time) > testcase(name, classname, time) with at
    most one failure or error (message, type) and optional system-out."""
    assert root.tag == "testsuites"
    for suite in root:
        assert suite.tag == "testsuite"
        for attr in ("name", "tests", "failures", "errors", "time"):
            assert suite.get(attr) is not None, attr
        int(suite.get("tests"))
        float(suite.get("time"))
        for tc in suite:
            assert tc.tag == "testcase"
            assert tc.get("name") and tc.get("classname")
            float(tc.get("time"))
            kids = [k.tag for k in tc]
            assert set(kids) <= {"failure", "error", "skipped", "system-out", "system-err"}
            assert sum(k in ("failure", "error", "skipped") for k in kids) <= 1
            for k in tc:
                if k.tag in ("failure", "error"):
                    assert k.get("message") is not None and k.get("type")


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.charts: list[int] = []
        self.rows = 0
        self.scripts = 0
        self.external = 0

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "svg":
            self.charts.append(0)
        elif tag == "circle" and "layer-point" in (a.get("class") or ""):
            self.charts[-1] += 1
        elif tag == "tr" and "model" in (a.get("class") or "").split():
            self.rows += 1
        elif tag == "script":
            self.scripts += 1
        if any(v and v.startswith(("http:", "https:", "//")) for k, v in attrs
               if k in ("src", "href")):
            self.external += 1


def test_html_page_is_self_contained_with_one_point_per_compared_layer(full_run):
    _, out = full_run
    page = _Page()
    page.feed((out / "r.html").read_text())
    assert page.rows == 7 and page.scripts == 0 and page.external == 0
    doc = json.loads((out / "r.json").read_text())
    per_layer = [len(m["report"]["layers"]) for m in doc["models"]
                 if m.get("report") and m["report"].get("layers")]
    assert len(per_layer) == 2 and page.charts == per_layer


def test_jobs_2_gives_the_same_reports_as_jobs_1(tmp_path, sample_onnx):
    manifest = tmp_path / "m.toml"
    manifest.write_text(_light_models(tmp_path, sample_onnx))
    docs = []
    for jobs in (1, 2):
        out = tmp_path / f"out{jobs}"
        r = cli("batch", manifest, "--out-dir", out, "--jobs", jobs, "--json", out / "r.json",
                "--junit", out / "r.xml")
        assert r.returncode == 2, r.stderr
        doc = _without_timings_and_paths(json.loads((out / "r.json").read_text()))
        docs.append(json.dumps(doc, sort_keys=True))
    assert docs[0] == docs[1]


def _without_timings_and_paths(x):
    if isinstance(x, dict):
        return {k: _without_timings_and_paths(v) for k, v in x.items()
                if k not in ("seconds", "timings", "converted", "output", "source", "manifest",
                             "totals")}
    if isinstance(x, list):
        return [_without_timings_and_paths(v) for v in x]
    return x


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_are_disjoint_and_cover_the_manifest(n):
    names = [f"model-{i}" for i in range(40)] + ["resnet50", "bert", "a", "b"]
    seen = []
    for k in range(1, n + 1):
        seen += [name for name in names if in_shard(name, k, n)]
    assert sorted(seen) == sorted(names)
    # a model's shard does not depend on the others
    assert [in_shard("resnet50", k, n) for k in range(1, n + 1)].count(True) == 1


def test_shard_runs_only_its_models(tmp_path, sample_onnx):
    manifest = tmp_path / "m.toml"
    manifest.write_text(_light_models(tmp_path, sample_onnx))
    names = [m.name for m in read_manifest(manifest)]
    ran = []
    for k in (1, 2):
        out = tmp_path / f"s{k}"
        r = cli("batch", manifest, "--out-dir", out, "--shard", f"{k}/2", "--json", out / "r.json")
        doc = json.loads((out / "r.json").read_text())
        ran += [m["name"] for m in doc["models"]]
        assert r.returncode in (0, 1, 2)
    assert sorted(ran) == sorted(names)


@pytest.mark.parametrize("bad", ["0/2", "3/2", "x", "1/0"])
def test_bad_shard_is_refused(bad):
    with pytest.raises(ModelportError):
        parse_shard(bad)


def test_manifest_problems_are_all_reported_before_anything_runs(tmp_path):
    (tmp_path / "a.onnx").write_bytes(b"")
    manifest = tmp_path / "m.toml"
    manifest.write_text("""
[defaults]
rtol = 1e-3
colour = "blue"

[[model]]
source = "a.onnx"
pre_layer = true

[[model]]
source = "a.onnx"

[[model]]
name = "gone"
source = "missing.h5"
options = { nchw_inputs = true, turbo = true }
""")
    with pytest.raises(ManifestError) as err:
        read_manifest(manifest)
    problems = err.value.problems
    text = "\n".join(problems)
    assert "'colour'" in text and "'pre_layer'" in text and "duplicate name" in text
    assert "missing.h5" in text and "'turbo'" in text
    assert len(problems) == 5
    out = tmp_path / "out"
    r = cli("batch", manifest, "--out-dir", out)
    assert r.returncode == 2 and not out.exists()
    assert r.stderr.count("m.toml") >= 5


def test_a_timeout_is_that_models_error(tmp_path):
    (tmp_path / "slow.py").write_text("import time\n\ndef make():\n    time.sleep(60)\n")
    manifest = tmp_path / "m.toml"
    manifest.write_text('[[model]]\nname = "slow"\nsource = "slow:make"\n'
                        'input = ["x:1,4"]\n')
    r = cli("batch", manifest, "--out-dir", tmp_path / "o", "--timeout", "5",
            "--json", tmp_path / "r.json")
    assert r.returncode == 2
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["models"][0]["status"] == "error" and "timed out" in doc["models"][0]["error"]


def test_verify_and_convert_write_single_model_reports(tmp_path, sample_onnx):
    r = cli("convert", sample_onnx, "-o", tmp_path / "o.onnx", "--verify", "--per-layer",
            "--junit", tmp_path / "c.xml", "--html", tmp_path / "c.html")
    assert r.returncode == 0, r.stderr
    root = ET.parse(tmp_path / "c.xml").getroot()
    _check_junit_structure(root)
    assert root.find("testsuite").get("tests") == "1"
    page = _Page()
    page.feed((tmp_path / "c.html").read_text())
    assert page.rows == 1 and len(page.charts) == 1 and page.charts[0] > 0
    r = cli("verify", sample_onnx, tmp_path / "o.onnx", "--rtol", "0", "--atol", "0",
            "--junit", tmp_path / "v.xml")
    assert r.returncode == 1
    suite = ET.parse(tmp_path / "v.xml").getroot().find("testsuite")
    assert suite.get("failures") == "1"


def test_assert_equivalent(tmp_path, sample_onnx):
    from modelport.testing import assert_equivalent

    out = tmp_path / "o.onnx"
    assert cli("convert", sample_onnx, "-o", out, "-O0").returncode == 0
    assert assert_equivalent(sample_onnx, out, per_layer=True).passed
    proto = onnx.load(out)
    for t in proto.graph.initializer:
        if t.name == "conv2.w":
            w = onnx.numpy_helper.to_array(t).copy()
            w[0] += 1.0
            t.CopyFrom(onnx.numpy_helper.from_array(w, t.name))
    onnx.save(proto, tmp_path / "bad.onnx")
    with pytest.raises(AssertionError) as err:
        assert_equivalent(sample_onnx, tmp_path / "bad.onnx", per_layer=True)
    assert "first diverging layer: conv2" in str(err.value)
    assert "max abs err" in str(err.value)
    assert np.isfinite(1.0)


@pytest.mark.slow
def test_html_report_renders_in_headless_chromium(full_run, tmp_path):
    """The page a person opens from CI artifacts, rendered by a real browser (Debian's
    chromium; `make bench-tests` installs it)."""
    import shutil

    _, out = full_run
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "headless Chromium is needed: apt-get install chromium"
    shot = tmp_path / "page.png"
    r = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu",
                        "--disable-background-networking", "--disable-component-update",
                        "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'ud'}",
                        f"--screenshot={shot}", "--window-size=1200,1600",
                        (out / "r.html").as_uri()], capture_output=True, text=True, timeout=120)
    assert shot.exists() and shot.stat().st_size > 10_000, r.stderr[-2000:]
    import zlib

    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    # decode the PNG and check the page is not blank: some red (a failing layer or the FAIL
    # status) and some green (passing points) pixels were drawn
    import struct

    pos, idat, width, height = 8, b"", 0, 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and ctype in (2, 6)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(idat)
    stride = width * bpp
    rows, prev = [], bytearray(stride)
    for y in range(height):
        f = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    pixels = np.frombuffer(b"".join(rows), np.uint8).reshape(height, width, bpp)[..., :3]
    r_, g_, b_ = (pixels[..., i].astype(int) for i in range(3))
    greenish = ((g_ > 100) & (r_ < 90) & (b_ < 90)).sum()
    reddish = ((r_ > 150) & (g_ < 80) & (b_ < 80)).sum()
    assert greenish > 20 and reddish > 20
