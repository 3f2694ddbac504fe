"""curator: from an open model on Hugging Face to a benchmarked, reviewed Foundry Local registry entry."""

__version__ = "0.1.0"
