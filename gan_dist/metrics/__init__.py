"""Quality metrics of generated images and the classifier whose features they use."""
