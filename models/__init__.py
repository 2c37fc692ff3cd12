"""Reference models of the design document, built from PyTorch modules."""
