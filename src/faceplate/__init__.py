"""faceplate: face swap, de-aging and beauty fix for VFX plates."""

__version__ = "0.1.0"
