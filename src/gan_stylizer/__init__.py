"""gan-stylizer: feed-forward GAN style transfer with Gram style and VGG content losses."""

__version__ = "0.1.0"
