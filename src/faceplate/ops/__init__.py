"""Pure image and tensor operations (no I/O): filters, face-region masks, skin models, retouch bands."""
