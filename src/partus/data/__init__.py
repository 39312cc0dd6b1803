"""Data for training and tests: synthetic phantoms (NumPy/OpenCV only; importing this package loads no torch)."""
