"""Recurrent layers: all-zero initial states dropped.

ONNX's LSTM, GRU and RNN treat a missing ``initial_h`` / ``initial_c`` as zeros. Exporters of
dynamic-batch models build those zeros at run time::

    zeros = Expand(0.0, Concat([num_directions], Shape(x)[0:1], [hidden]))
    h0 = Slice(zeros, ...)            # one layer's share
    y = LSTM(x, W, R, B, "", h0, h0)

This pass replaces such inputs by the missing input when the value is provably all zeros: a
constant of zeros, ``ConstantOfShape`` with value 0 (or none), ``Expand`` of an all-zero
constant, a Slice/Gather/Reshape/Squeeze/Unsqueeze/Transpose/Identity/Cast of one of
those, or a Concat of such values only (tf2onnx builds a bidirectional layer's state as
``Concat(Unsqueeze(zeros_fw), Unsqueeze(zeros_bw))``). The shape computation left without a
use is then removed by the dead-code pass.
"""

from __future__ import annotations

import numpy as np
import onnx_ir as ir

from modelport.graph_ir.passes.counting import CountingPass

# op type -> indices of its initial-state inputs
_STATE_INPUTS = {"LSTM": (5, 6), "GRU": (5,), "RNN": (5,)}
_ZERO_PRESERVING = {"Slice", "Gather", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
                    "Identity", "Cast", "Expand", "Tile", "Flatten"}


def is_all_zeros(value: ir.Value | None, depth: int = 0) -> bool:
    if value is None or depth > 16:
        return False
    if value.const_value is not None:
        if value.const_value.size > 1 << 20:
            return False
        return not np.any(value.const_value.numpy())
    node = value.producer()
    if node is None or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "ConstantOfShape":
        attr = node.attributes.get("value")
        return attr is None or not np.any(attr.as_tensor().numpy())
    if node.op_type in _ZERO_PRESERVING:
        return is_all_zeros(node.inputs[0], depth + 1)
    if node.op_type == "Concat":
        return bool(node.inputs) and all(is_all_zeros(v, depth + 1) for v in node.inputs)
    return False


class DropZeroInitialStatesPass(CountingPass):
    """Removes all-zero ``initial_h``/``initial_c`` inputs of LSTM, GRU and RNN nodes."""

    def call(self, model: ir.Model) -> ir.passes.PassResult:
        self.rewrites = 0
        for node in model.graph.all_nodes():
            if node.domain not in ("", "ai.onnx") or node.op_type not in _STATE_INPUTS:
                continue
            for index in _STATE_INPUTS[node.op_type]:
                if index < len(node.inputs) and is_all_zeros(node.inputs[index]):
                    node.replace_input_with(index, None)
                    self.rewrites += 1
            count = len(node.inputs)
            while count and node.inputs[count - 1] is None:
                count -= 1
            if count < len(node.inputs):
                node.resize_inputs(count)
        return ir.passes.PassResult(model, self.rewrites > 0)


from modelport.graph_ir.passes.manager import register_pass  # noqa: E402


@register_pass(2, "drop-zero-initial-states")
def drop_zero_initial_states_pass() -> ir.passes.PassBase:
    return DropZeroInitialStatesPass()
