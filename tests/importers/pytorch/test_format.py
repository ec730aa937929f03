"""Format detection for PyTorch sources, without importing torch in format.py."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from modelport.importers.pytorch.format import archive_kind, is_entry_point
from modelport.importers.registry import detect_format, read_head
from tests.importers.pytorch.models import cnn

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = torch.nn.Linear(3, 2)

    def forward(self, x):
        return self.fc(x)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fmt")
    model = Tiny().eval()
    x = torch.randn(2, 3)
    paths = {
        "pt2": folder / "m.pt2",
        "script": folder / "m_script.pt",
        "state_dict": folder / "sd.pth",
        "legacy": folder / "legacy.pt",
        "pickle": folder / "full.pt",
        "junk_zip": folder / "junk.pt",
    }
    torch.export.save(torch.export.export(model, (x,)), paths["pt2"])
    torch.jit.save(torch.jit.script(model), paths["script"])
    torch.save(model.state_dict(), paths["state_dict"])
    torch.save(model.state_dict(), paths["legacy"], _use_new_zipfile_serialization=False)
    torch.save(model, paths["pickle"])
    import zipfile

    with zipfile.ZipFile(paths["junk_zip"], "w") as z:
        z.writestr("a/readme.txt", "not a model")
    return {k: str(v) for k, v in paths.items()}


@pytest.mark.parametrize("key,fmt,kind", [
    ("pt2", "torch-export", "export"),
    ("script", "torchscript", "torchscript"),
    ("state_dict", "pytorch", "pickle"),
    ("legacy", "pytorch", "pickle"),
    ("pickle", "pytorch", "pickle"),
])
def test_detects_archives_by_content(files, key, fmt, kind):
    path = files[key]
    assert archive_kind(path, read_head(path)) == kind
    assert detect_format(path).name == fmt
    # content wins over suffix: a .pt2 renamed .bin is still found
    renamed = path + ".bin"
    os.link(path, renamed)
    assert detect_format(renamed).name == fmt


def test_junk_zip_with_pt_suffix_is_not_pytorch(files):
    from modelport.errors import InvalidModelError

    assert archive_kind(files["junk_zip"], read_head(files["junk_zip"])) is None
    with pytest.raises(InvalidModelError, match="suffix"):
        detect_format(files["junk_zip"])


def test_entry_points():
    assert is_entry_point("tests.importers.pytorch.models:cnn")
    assert is_entry_point("pkg.mod:Factory.build")
    assert not is_entry_point("model.onnx")
    assert not is_entry_point("C:/models/m.pt")
    assert detect_format("tests.importers.pytorch.models:cnn").name == "pytorch"
    assert callable(cnn)


def test_format_module_does_not_import_torch():
    code = ("import sys, modelport.importers.registry as r; fm = r.formats(); "
            "assert {'pytorch', 'torchscript', 'torch-export'} <= set(fm), fm; "
            "assert 'torch' not in sys.modules, 'torch imported'; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": ROOT})
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
