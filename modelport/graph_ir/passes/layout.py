"""Layout transposes (channels-last sources): a placeholder until the transpose-pushing pass lands.

Importers of NHWC formats emit Transpose pairs around layout-sensitive ops; onnxscript's
``transpose_transpose_rule`` (in the default rule set) already cancels adjacent pairs. The
pass that pushes transposes through elementwise ops will be registered here with
``@register_pass(1)``.
"""
