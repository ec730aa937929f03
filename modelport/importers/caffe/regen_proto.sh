#!/bin/sh
# Regenerate _pb/caffe_pb2.py from caffe.proto. Needs protoc (apt-get install protobuf-compiler).
# The generated module only embeds the serialized FileDescriptorProto and builds its classes
# with the protobuf runtime's builder, so it works with protobuf runtimes newer than protoc.
set -e
cd "$(dirname "$0")"
protoc --python_out=_pb caffe.proto
echo "wrote $(pwd)/_pb/caffe_pb2.py with $(protoc --version)"
