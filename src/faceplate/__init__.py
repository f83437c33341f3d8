"""faceplate: face swap, de-aging and beauty fix for VFX plates."""

__version__ = "0.1.0"

from faceplate.cpu import configure_threads

configure_threads()  # before torch / numpy / cv2 load: they read the thread and wait-policy variables once
