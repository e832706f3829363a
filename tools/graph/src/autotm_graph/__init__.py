"""autotm-graph: the model zoo, the training-graph builder and the graph IR."""

__version__ = "0.1.0"
