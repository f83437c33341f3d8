"""Automatic QC of a render (``faceplate qc``): per-frame measures against the plate and the shot, flags past
thresholds, a JSON + HTML report. ``measures`` are pure; ``run`` is the pass; ``report`` writes the results."""

from faceplate.qc.config import FLAGS, QcConfig
from faceplate.qc.files import latest_flags
from faceplate.qc.report import write_report
from faceplate.qc.run import QcResult, run_qc

__all__ = ["FLAGS", "QcConfig", "QcResult", "latest_flags", "run_qc", "write_report"]
