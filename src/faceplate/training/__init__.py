"""Training and data preparation: keyframe pairs, facesets, reference de-age."""
