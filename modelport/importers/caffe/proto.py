"""Reading Caffe net definitions: text prototxt and binary NetParameter, in the current format
and the legacy V1 (``layers { type: CONVOLUTION }``) and V0 (``layers { layer { ... } }``)
formats, which are upgraded to current ``LayerParameter`` messages on load.

The text reader accepts fields that this project's schema lacks (Caffe forks add many) and
records every one it skipped with the path where it was, so that the importer can report the
ones that could change numerics instead of dropping them silently.
"""

from __future__ import annotations

import dataclasses

from google.protobuf import text_format
from google.protobuf.message import DecodeError

from modelport.errors import InvalidModelError, printable
from modelport.importers.caffe._pb import caffe_pb2 as pb
from modelport.importers.files import read_bytes

NetParameter = pb.NetParameter
LayerParameter = pb.LayerParameter


@dataclasses.dataclass(frozen=True)
class UnknownField:
    """A text-format field the schema does not know: where it was and its name."""

    path: tuple[tuple[str, int], ...]  # (field name, index) from the NetParameter down
    name: str
    line: int

    @property
    def top(self) -> tuple[str, int] | None:
        return self.path[0] if self.path else None

    def dotted(self) -> str:
        inner = [p for p, _ in self.path[1:]]
        return ".".join([*inner, self.name])


class _TrackingParser(text_format._Parser):  # noqa: SLF001 - protobuf's own text parser
    """protobuf's text parser, skipping unknown fields and remembering where they were."""

    def __init__(self) -> None:
        super().__init__(allow_unknown_field=True)
        self.stack: list[tuple[str, int]] = []
        self.unknown: list[UnknownField] = []

    def _MergeMessageField(self, tokenizer, message, field):  # noqa: N802
        index = len(getattr(message, field.name)) if field.is_repeated else 0
        self.stack.append((field.name, index))
        try:
            return super()._MergeMessageField(tokenizer, message, field)
        finally:
            self.stack.pop()

    def _SkipFieldContents(self, tokenizer, field_name, immediate_message_type):  # noqa: N802
        self.unknown.append(UnknownField(tuple(self.stack), field_name, tokenizer._line + 1))
        return super()._SkipFieldContents(tokenizer, field_name, immediate_message_type)


def parse_text(text: str, path: str) -> tuple[pb.NetParameter, list[UnknownField]]:
    net = pb.NetParameter()
    parser = _TrackingParser()
    try:
        parser.MergeLines(text.split("\n"), net)
    except text_format.ParseError as exc:
        # protobuf quotes the offending line, which a damaged file may fill with control
        # characters (line breaks included): escape them so the error stays one line
        raise InvalidModelError(f"is not a valid Caffe prototxt: {printable(str(exc))}",
                                path=path) from None
    except RecursionError:
        raise InvalidModelError("is not a valid Caffe prototxt: its messages are nested too "
                                "deeply", path=path) from None
    return net, parser.unknown


def parse_binary(data: bytes | memoryview, path: str) -> pb.NetParameter:
    net = pb.NetParameter()
    try:
        net.ParseFromString(bytes(data))
    except (DecodeError, RuntimeError, ValueError) as exc:  # RecursionError included
        raise InvalidModelError(
            f"cannot parse as a binary Caffe NetParameter (truncated or corrupt?): {exc}",
            path=path,
        ) from None
    return net


def read_net(path: str) -> tuple[pb.NetParameter, list[UnknownField]]:
    """Read a prototxt (text) or binary net definition; returns it upgraded to the current format."""
    data = read_bytes(path)
    unknown: list[UnknownField] = []
    if looks_like_text(data[:4096]):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            text = data.decode("latin-1")
        net, unknown = parse_text(text, path)
    else:
        net = parse_binary(data, path)
    upgrade(net, path)
    return net, unknown


def looks_like_text(head: bytes) -> bool:
    if not head:
        return False
    if b"\x00" in head:
        return False
    printable = sum(1 for c in head if 32 <= c < 127 or c in (9, 10, 13))
    return printable >= 0.95 * len(head)


# ---- legacy format upgrades ----------------------------------------------------------------

_V1_TYPES = {
    "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DATA": "Data", "DECONVOLUTION": "Deconvolution", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

# V1 parameter fields that have the same name and message type in LayerParameter.
_V1_PARAMS = (
    "accuracy_param", "argmax_param", "concat_param", "convolution_param", "data_param",
    "dropout_param", "eltwise_param", "exp_param", "inner_product_param", "lrn_param",
    "mvn_param", "pooling_param", "power_param", "relu_param", "sigmoid_param",
    "softmax_param", "slice_param", "tanh_param", "threshold_param", "transform_param",
    "loss_param",
)

_V0_TYPES = {
    "accuracy": "Accuracy", "bnll": "BNLL", "concat": "Concat", "conv": "Convolution",
    "data": "Data", "dropout": "Dropout", "euclidean_loss": "EuclideanLoss",
    "flatten": "Flatten", "hdf5_data": "HDF5Data", "hdf5_output": "HDF5Output",
    "im2col": "Im2col", "images": "ImageData", "infogain_loss": "InfogainLoss",
    "innerproduct": "InnerProduct", "lrn": "LRN", "multinomial_logistic_loss":
    "MultinomialLogisticLoss", "pool": "Pooling", "relu": "ReLU", "sigmoid": "Sigmoid",
    "softmax": "Softmax", "softmax_loss": "SoftmaxWithLoss", "split": "Split",
    "tanh": "TanH", "window_data": "WindowData", "padding": "Padding",
}


def upgrade(net: pb.NetParameter, path: str | None = None) -> None:
    """Upgrade legacy ``layers`` (V1, with V0 inside) to current ``layer`` entries in place."""
    if not len(net.layers):
        return
    if len(net.layer):
        raise InvalidModelError(
            "mixes the current 'layer' and the legacy 'layers' fields; use one of them", path=path
        )
    for old in net.layers:
        new = net.layer.add()
        _upgrade_v1(old, new)
    del net.layers[:]


def _upgrade_v1(old: pb.V1LayerParameter, new: pb.LayerParameter) -> None:
    new.bottom.extend(old.bottom)
    new.top.extend(old.top)
    new.include.extend(old.include)
    new.exclude.extend(old.exclude)
    new.loss_weight.extend(old.loss_weight)
    new.blobs.extend(old.blobs)
    if old.HasField("layer"):
        _upgrade_v0(old.layer, new)
    if old.HasField("name"):
        new.name = old.name
    if old.HasField("type"):
        enum_name = pb.V1LayerParameter.LayerType.Name(old.type)
        new.type = _V1_TYPES.get(enum_name, enum_name)
    for field in _V1_PARAMS:
        if old.HasField(field):
            getattr(new, field).CopyFrom(getattr(old, field))


def _upgrade_v0(v0: pb.V0LayerParameter, new: pb.LayerParameter) -> None:
    new.name = v0.name
    new.type = _V0_TYPES.get(v0.type, v0.type)
    new.blobs.extend(v0.blobs)
    t = new.type
    if t in ("Convolution", "InnerProduct"):
        p = new.convolution_param if t == "Convolution" else new.inner_product_param
        if v0.HasField("num_output"):
            p.num_output = v0.num_output
        if v0.HasField("biasterm"):
            p.bias_term = v0.biasterm
        if t == "Convolution":
            if v0.HasField("pad"):
                p.pad.append(v0.pad)
            if v0.HasField("kernelsize"):
                p.kernel_size.append(v0.kernelsize)
            if v0.HasField("group"):
                p.group = v0.group
            if v0.HasField("stride"):
                p.stride.append(v0.stride)
    elif t == "Pooling":
        p = new.pooling_param
        if v0.HasField("pad"):
            p.pad = v0.pad
        if v0.HasField("kernelsize"):
            p.kernel_size = v0.kernelsize
        if v0.HasField("stride"):
            p.stride = v0.stride
        if v0.HasField("pool"):
            p.pool = v0.pool
    elif t == "Dropout":
        if v0.HasField("dropout_ratio"):
            new.dropout_param.dropout_ratio = v0.dropout_ratio
    elif t == "LRN":
        p = new.lrn_param
        for name in ("local_size", "alpha", "beta", "k"):
            if v0.HasField(name):
                setattr(p, name, getattr(v0, name))
    elif t == "Concat":
        if v0.HasField("concat_dim"):
            new.concat_param.concat_dim = v0.concat_dim
