"""Sluice: the release loop for LLM and agent systems."""

__version__ = "0.1.0"
