"""The TensorFlow op translation table.

A translator is ``fn(ctx, node, inputs) -> value or list of values`` (one per output of the
op), where ``node`` is a :class:`~modelport.importers.tensorflow.load.Node` (the NodeDef with
attribute helpers), ``inputs`` the values of its data inputs and ``ctx`` the
:class:`~modelport.importers.tensorflow.load.Context` (graph builder, static shapes,
constants). Register one for a custom op::

    from modelport.importers.tensorflow import tf_op

    @tf_op("MyGelu")
    def my_gelu(ctx, node, inputs):
        (x,) = inputs
        return ctx.op("Mul", x, ctx.op("Sigmoid", ctx.op("Mul", x, ctx.scalar(1.702, x))))
"""

from __future__ import annotations

from modelport.importers.optable import OpTable

tf_op = OpTable("TensorFlow op")

# Control-flow ops. While/If and the TF 1 frame ops (rewritten into loops and conds) are
# translated by ..control, TensorLists and TensorArrays by ops/lists.py; those of this list
# that no translator handles get one error naming them, with a hint, instead of a generic
# "unsupported".
CONTROL_FLOW = frozenset({
    "While", "StatelessWhile", "If", "StatelessIf", "Case", "StatelessCase", "Switch", "Merge",
    "Enter", "Exit", "NextIteration", "LoopCond", "RefEnter", "RefExit", "RefMerge",
    "RefSwitch", "RefNextIteration",
    "TensorListReserve", "TensorListFromTensor", "TensorListGetItem", "TensorListSetItem",
    "TensorListStack", "TensorListLength", "TensorListElementShape", "TensorListPushBack",
    "TensorListPopBack", "TensorListConcatV2", "TensorListSplit", "TensorListGather",
    "TensorListScatterIntoExistingList", "EmptyTensorList",
    "TensorArrayV3", "TensorArrayReadV3", "TensorArrayWriteV3", "TensorArrayGatherV3",
    "TensorArrayScatterV3", "TensorArraySizeV3", "TensorArrayConcatV3", "TensorArraySplitV3",
})
