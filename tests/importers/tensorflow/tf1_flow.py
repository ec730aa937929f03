"""TF 1 control-flow graphs (loop frames, Switch/Merge conds, TensorArrayV3), made in a child
process: ``python -m tests.importers.tensorflow.tf1_flow OUT_DIR``.

A child because the graphs need process-wide TF 1 settings (control flow v1, legacy
``tf.compat.v1.nn.rnn_cell`` cells, which need ``TF_USE_LEGACY_KERAS=1``) that must not leak
into the Keras 3 tests. Writes ``NAME.pb`` and ``NAME.npz`` (feeds ``in:NAME``, TensorFlow's
outputs ``out:NAME``) per graph.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np


def _freeze_and_run(v1, graph, sess, outputs, feeds, path: Path) -> None:
    frozen = v1.graph_util.convert_variables_to_constants(sess, graph.as_graph_def(), outputs)
    path.with_suffix(".pb").write_bytes(frozen.SerializeToString())
    results = sess.run([f"{o}:0" for o in outputs], {f"{k}:0": v for k, v in feeds.items()})
    arrays = {f"in:{k}": v for k, v in feeds.items()}
    arrays.update({f"out:{o}": np.asarray(r) for o, r in zip(outputs, results)})
    np.savez(path.with_suffix(".npz"), **arrays)


def main(out: Path) -> None:
    import tensorflow as tf

    v1 = tf.compat.v1
    v1.disable_control_flow_v2()
    rng = np.random.default_rng(7)

    # dynamic_rnn over a 2-layer MultiRNNCell (LSTM, GRU), and a cond on an input.
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [3, 6, 5], name="x")
        cell = v1.nn.rnn_cell.MultiRNNCell([v1.nn.rnn_cell.LSTMCell(8),
                                            v1.nn.rnn_cell.GRUCell(6)])
        seq, _ = v1.nn.dynamic_rnn(cell, x, dtype=tf.float32)
        tf.identity(seq, name="rnn_out")
        flag = v1.placeholder(tf.float32, [], name="flag")
        tf.identity(v1.cond(flag > 0.0, lambda: tf.nn.relu(x) * 2.0, lambda: x - 1.0),
                    name="cond_out")
        with v1.Session(graph=graph) as sess:
            sess.run(v1.global_variables_initializer())
            for v in v1.global_variables():
                v.load(rng.standard_normal(v.shape.as_list()).astype(np.float32) * 0.4, sess)
            feeds = {"x": rng.standard_normal((3, 6, 5)).astype(np.float32),
                     "flag": np.asarray(-1.0, np.float32)}
            _freeze_and_run(v1, graph, sess, ["rnn_out", "cond_out"], feeds,
                            out / "tf1_dynamic_rnn")

    # A while_loop whose trip count depends on the data, writing a TensorArray.
    graph = tf.Graph()
    with graph.as_default():
        x = v1.placeholder(tf.float32, [4], name="x")
        ta = tf.TensorArray(tf.float32, size=20, element_shape=[4])

        def cond(i, y, ta):
            return tf.logical_and(tf.reduce_sum(tf.abs(y)) < 40.0, i < 20)

        def body(i, y, ta):
            y = y * 1.5 + 0.25
            return i + 1, y, ta.write(i, y)

        i, y, ta = v1.while_loop(cond, body, [tf.constant(0), x, ta])
        tf.identity(y, name="last")
        tf.identity(i, name="steps")
        with v1.Session(graph=graph) as sess:
            feeds = {"x": rng.standard_normal(4).astype(np.float32)}
            _freeze_and_run(v1, graph, sess, ["last", "steps"], feeds, out / "tf1_while")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    main(Path(sys.argv[1]))
