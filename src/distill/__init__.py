"""distill: turn a large language model's knowledge into a small, fast task model."""

__version__ = "0.1.0"
