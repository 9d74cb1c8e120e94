"""gan-stylizer: feed-forward GAN style transfer with Gram style and VGG content losses.

    from gan_stylizer import Stylizer
    stylizer = Stylizer.load("starry_night")     # a zoo name, a checkpoint or an exported model
    image = stylizer(PIL.Image.open("photo.jpg"), strength=0.7)   # -> PIL.Image

`import gan_stylizer` loads nothing heavy: Stylizer (gan_stylizer.api) is imported on first use.
"""

__version__ = "0.1.0"
__all__ = ["Stylizer", "__version__"]


def __getattr__(name: str):
    if name == "Stylizer":
        from gan_stylizer.api import Stylizer

        return Stylizer
    raise AttributeError(f"module 'gan_stylizer' has no attribute {name!r}")
