"""keras.applications architectures (weights=None, seeded weights) frozen with
convert_variables_to_constants_v2 and exported with model.export(), converted where TensorFlow
cannot be imported, compared with TensorFlow. MobileNetV2 runs always; the rest are marked
slow (`pytest -m slow tests/importers/tensorflow`)."""

from __future__ import annotations

import pytest

from tests.importers.tensorflow.conftest import convert_without_tensorflow
from tests.oracles import assert_close, run_onnx

ALL = ["ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtSmall", "ConvNeXtTiny", "ConvNeXtXLarge",
       "DenseNet121", "DenseNet169", "DenseNet201", "EfficientNetB0", "EfficientNetB1",
       "EfficientNetB2", "EfficientNetB3", "EfficientNetB4", "EfficientNetB5", "EfficientNetB6",
       "EfficientNetB7", "EfficientNetV2B0", "EfficientNetV2B1", "EfficientNetV2B2",
       "EfficientNetV2B3", "EfficientNetV2L", "EfficientNetV2M", "EfficientNetV2S",
       "InceptionResNetV2", "InceptionV3", "MobileNet", "MobileNetV2", "MobileNetV3Large",
       "MobileNetV3Small", "NASNetLarge", "NASNetMobile", "ResNet101", "ResNet101V2",
       "ResNet152", "ResNet152V2", "ResNet50", "ResNet50V2", "VGG16", "VGG19", "Xception"]
FAST = ["MobileNetV2"]
SIZES = {"NASNetMobile": 224, "NASNetLarge": 331}


def _check(name, tmp_path):
    import keras

    from tests.importers.tensorflow import models as M

    size = SIZES.get(name, 96)
    kwargs = {"alpha": 0.35} if name in ("MobileNet", "MobileNetV2") else {}
    model = getattr(keras.applications, name)(weights=None, input_shape=(size, size, 3),
                                              **kwargs)
    M.randomize(model, 0)
    feeds = M.rng_inputs(1, (1, size, size, 3))
    cases = [M.keras_frozen(name, model, feeds, tmp_path),
             M.keras_export(name + "_export", model, feeds, tmp_path)]
    jobs = [{"name": c.name, "src": c.src, "out": str(tmp_path / f"{c.name}.onnx"),
             "options": {}} for c in cases]
    results = convert_without_tensorflow(jobs, tmp_path)
    for case in cases:
        assert results[case.name] == "ok", results[case.name]
        got = run_onnx(tmp_path / f"{case.name}.onnx", case.feeds)
        for key, want in case.expected.items():
            assert_close(got[key], want, name=f"{case.name}:{key}")


@pytest.mark.parametrize("name", FAST)
def test_application(tf, name, tmp_path):
    _check(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [n for n in ALL if n not in FAST])
def test_application_slow(tf, name, tmp_path):
    _check(name, tmp_path)
