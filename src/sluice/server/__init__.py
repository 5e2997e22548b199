"""The HTTP server of ``sluice serve``."""
