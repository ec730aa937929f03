"""TensorFlow op translators, one module per family; optable.load_translators
imports every module of this package (each registers its translators)."""
