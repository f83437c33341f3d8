"""Network architectures and their files on disk (no training, no rendering)."""
