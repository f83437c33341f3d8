"""Rec.709 (BT.709) luma and Y'CbCr constants, defined once for every module that needs them."""

from __future__ import annotations

import numpy as np

KR, KB = 0.2126, 0.0722  # luma weights of R and B
KG = 1.0 - KR - KB

#: Luma of encoded RGB: (1, 3), for cv2.transform.
LUMA = np.array([[KR, KG, KB]], np.float32)

#: Encoded RGB → full-range Y'CbCr with chroma centred on 0: (3, 3).
YCBCR = np.array(
    [
        [KR, KG, KB],
        [-KR / (2 * (1 - KB)), -KG / (2 * (1 - KB)), 0.5],
        [0.5, -KG / (2 * (1 - KR)), -KB / (2 * (1 - KR))],
    ],
    np.float32,
)

#: Full-range Y'CbCr (chroma centred on 0) → encoded RGB: (3, 3).
RGB_FROM_YCBCR = np.linalg.inv(YCBCR.astype(np.float64)).astype(np.float32)

#: A full-range R'G'B' code-value change → the limited-range (16-235 / 16-240) Y'CbCr code-value change.
YCBCR_LIMITED = (YCBCR * np.array([[219 / 255], [224 / 255], [224 / 255]], np.float32)).astype(np.float32)
