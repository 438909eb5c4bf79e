"""Training: the compiled WGAN-GP step, checkpoints, summaries and the outer loop."""
