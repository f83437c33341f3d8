"""Face swap: per-project DF / LIAE autoencoders (PyTorch), their training and checkpoints."""
