"""cvpipe: from a folder of images to a trained, evaluated, explained and exported vision model."""

__version__ = "0.1.0"
