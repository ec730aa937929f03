"""Translators of Keras layers, one module per family."""
