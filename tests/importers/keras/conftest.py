"""Fixtures for the Keras importer tests: Keras models built here with seeded random weights,
saved by Keras 3 (and Keras 2 through tf_keras), converted, and compared with Keras."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


# The "keras" extra (keras, tensorflow-cpu, tf-keras) is installed by `make test`: a missing
# one fails these tests, it never skips them.
@pytest.fixture(scope="session")
def k3():
    import keras

    return keras


@pytest.fixture(scope="session")
def k2():
    import tf_keras

    return tf_keras


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("keras_models")
