"""`autotm-graph train`: build the training-iteration graph of an inference ONNX graph.

The public entry point is :func:`build_training_model`; :mod:`.command` is the CLI.
"""

from .build import TrainOptions, build_training_model

__all__ = ["TrainOptions", "build_training_model"]
