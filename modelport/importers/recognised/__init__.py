"""Formats modelport recognises but does not convert: CNTK (v2 and v1), Deeplearning4j,
Nervana neon and JAX artifacts. Each is detected by content and answered in one line that
names the format and what to do (see :mod:`.format`); nothing in them is ever loaded."""
