"""gan_dist: data-parallel GAN training with Accelerate, and the coursework report."""

__version__ = "0.1.0"
