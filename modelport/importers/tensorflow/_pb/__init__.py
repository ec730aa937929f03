"""Python classes generated from ``../modelport_tf.proto`` (see ``../regen_proto.sh``)."""
