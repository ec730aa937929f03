"""TensorFlow importer: frozen GraphDefs (binary ``.pb``, text ``.pbtxt``) and SavedModels
read with this project's own protobuf schema (``modelport_tf.proto``): no TensorFlow needed.

Custom ops can be added with :data:`tf_op` (see :mod:`.table`).
"""

from modelport.importers.tensorflow.table import tf_op

__all__ = ["tf_op"]
