"""End-to-end flows built from the library parts: the gate, the demo."""
