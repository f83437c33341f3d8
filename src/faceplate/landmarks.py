"""Indices into MediaPipe's 478-point face mesh (468 mesh points + 10 iris points), named once.

``_R`` / ``_L`` are the person's right / left (the image's left / right for a frontal face).
"""

from __future__ import annotations

import numpy as np

MESH_POINTS = 468  # the mesh proper; 468..477 are the iris points
EYE_OUTER_R, EYE_INNER_R, EYE_OUTER_L, EYE_INNER_L = 33, 133, 263, 362
UPPER_LID_R, LOWER_LID_R, UPPER_LID_L, LOWER_LID_L = 159, 145, 386, 374
IRIS_R, IRIS_L = 468, 473  # iris centres
NOSE_TIP, NOSE_BOTTOM, ALAR_R, ALAR_L = 1, 2, 98, 327
NOSE_BRIDGE = 168  # between the eyes
MOUTH_R, MOUTH_L = 61, 291
UPPER_LIP, LOWER_LIP = 0, 17  # lip midpoints

#: Used for the similarity fit of alignment: eye corners and lids, brows, nose, mouth corners, upper lip.
ALIGN_POINTS = np.array(
    [EYE_OUTER_R, EYE_INNER_R, UPPER_LID_R, LOWER_LID_R, EYE_INNER_L, EYE_OUTER_L, UPPER_LID_L, LOWER_LID_L,
     70, 105, 107, 336, 334, 300,  # brows
     NOSE_BRIDGE, 6, 197, 195, 5, 4, NOSE_TIP, NOSE_BOTTOM, ALAR_R, ALAR_L,
     MOUTH_R, MOUTH_L, UPPER_LIP],
    np.int64,
)  # fmt: skip

#: Held still by the de-age lift: eyes, nose, mouth.
LIFT_ANCHORS = (EYE_OUTER_R, EYE_INNER_R, EYE_INNER_L, EYE_OUTER_L, NOSE_TIP, NOSE_BOTTOM, MOUTH_R, MOUTH_L,
                UPPER_LIP, LOWER_LIP, NOSE_BRIDGE)  # fmt: skip
