"""Run the modelport command line in a process where TensorFlow and Keras cannot be imported,
to show that converting a Keras file needs neither.

Usage: python examples/without_tensorflow.py convert model.h5 -o model.onnx
"""

from __future__ import annotations

import importlib.abc
import sys

BLOCKED = ("tensorflow", "keras", "tf_keras")


class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked in this process (examples/without_tensorflow.py)")
        return None


if __name__ == "__main__":
    sys.meta_path.insert(0, _Block())
    from modelport.cli import main

    try:
        main(sys.argv[1:])
    finally:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
        print(f"(TensorFlow/Keras modules imported during this command: {loaded or 'none'})",
              file=sys.stderr)
