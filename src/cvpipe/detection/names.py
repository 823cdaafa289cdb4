"""The names detection commands accept, in a module that imports nothing heavy, so that
building the ``cvpipe`` parser (and ``cvpipe --help``) does not import torch."""

FORMATS = ("coco", "voc", "yolo", "txt")  # dataset formats, read and written
IMAGE_MODES = ("copy", "hardlink", "none")  # how conversion places the images
PREDICTION_FORMATS = ("coco", "yolo", "voc")  # detection results det-eval reads
PROTOCOLS = ("coco", "voc07", "voc")  # mAP protocols: COCO 101-point, VOC07 11-point, VOC10+ all points
