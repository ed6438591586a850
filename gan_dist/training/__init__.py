"""Training: launching processes, the loop, the two steps, checkpoints and stopping."""
