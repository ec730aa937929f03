"""Run an MXNet symbol + params in the MXNet environment (a child process of modelport).

Usage (by modelport.convert.runners.mxnet, with the MXNet venv's python)::

    python mxnet_child.py request.json

The request names the symbol, the params file, an ``.npz`` of inputs (by variable name), the
outputs wanted (MXNet output names of ``get_internals()``, or ``"heads"``) and an ``.npz`` to
write them to. This file imports only MXNet and NumPy (never modelport).
"""

import json
import os
import sys

# This file's folder holds modelport's runner called mxnet.py: never import that one.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

import mxnet as mx  # noqa: E402
import numpy as np  # noqa: E402


def run(request):
    sym = mx.sym.load(request["symbol"])
    saved = mx.nd.load(request["params"]) if request.get("params") else {}
    arg_params, aux_params = {}, {}
    for key, value in saved.items():
        kind, _, name = key.partition(":")
        if kind == "aux":
            aux_params[name] = value
        elif kind == "arg":
            arg_params[name] = value
        else:
            arg_params[key] = value
    inputs = dict(np.load(request["inputs"]))
    wanted = request["outputs"]
    if wanted != "heads":
        internals = sym.get_internals()
        names = internals.list_outputs()
        picked = [internals[names.index(n)] for n in wanted if n in names]
        sym = mx.sym.Group(picked) if picked else sym
        wanted = [n for n in wanted if n in names]
    args = {}
    for name in sym.list_arguments():
        if name in inputs:
            args[name] = mx.nd.array(inputs[name], dtype=inputs[name].dtype)
        elif name in arg_params:
            args[name] = arg_params[name]
    shapes = {k: v.shape for k, v in inputs.items() if k in sym.list_arguments()}
    arg_shapes, _, aux_shapes = sym.infer_shape_partial(**shapes)
    for name, shape in zip(sym.list_arguments(), arg_shapes):
        if name not in args:  # labels and other unused inputs
            args[name] = mx.nd.zeros(shape)
    aux = {}
    for name, shape in zip(sym.list_auxiliary_states(), aux_shapes):
        aux[name] = aux_params[name] if name in aux_params else mx.nd.zeros(shape)
    exe = sym.bind(mx.cpu(), args=args, aux_states=aux, grad_req="null")
    outs = exe.forward(is_train=False)
    names = sym.list_outputs() if wanted == "heads" else wanted
    result = {}
    for i, (name, out) in enumerate(zip(names, outs)):
        result[f"{i}:{name}"] = out.asnumpy()
    np.savez(request["result"], **result)


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        run(json.load(f))
