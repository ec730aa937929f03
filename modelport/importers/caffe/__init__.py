"""Caffe importer: ``deploy.prototxt`` + ``.caffemodel`` read with this project's own schema
(no Caffe needed), legacy V0/V1 nets upgraded on load, weights memory-mapped.

Custom layer types can be added with :data:`caffe_layer` (see :mod:`.table`).
"""

from modelport.importers.caffe.table import caffe_layer

__all__ = ["caffe_layer"]
