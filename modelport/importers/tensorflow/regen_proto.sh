#!/bin/sh
# Regenerate _pb/modelport_tf_pb2.py from modelport_tf.proto. Needs protoc (apt-get install
# protobuf-compiler) or grpcio-tools (pip install grpcio-tools, then
# PROTOC="python -m grpc_tools.protoc" ./regen_proto.sh).
# The generated module only embeds the serialized FileDescriptorProto and builds its classes
# with the protobuf runtime's builder; the runtime-version guard that newer protoc versions add
# is removed so that it works with every protobuf runtime the project allows (>=5.29).
set -e
cd "$(dirname "$0")"
PROTOC=${PROTOC:-protoc}
$PROTOC -I. --python_out=_pb modelport_tf.proto
python3 - <<'PY'
import re
path = "_pb/modelport_tf_pb2.py"
text = open(path).read()
text = re.sub(r"from google\.protobuf import runtime_version as _runtime_version\n", "", text)
text = re.sub(r"_runtime_version\.ValidateProtobufRuntimeVersion\([^)]*\)\n", "", text)
open(path, "w").write(text)
PY
echo "wrote $(pwd)/_pb/modelport_tf_pb2.py"
