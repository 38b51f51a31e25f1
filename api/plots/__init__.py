"""Server-side plots of jobs and studies, rendered with matplotlib as SVG or PNG.

The names here are what the routes take in their paths; importing this package does not import
matplotlib (api/plots/render.py does, on the first plot a process draws)."""

from __future__ import annotations

from enum import StrEnum


class JobPlot(StrEnum):
    """The plots of a job, drawn from its per-epoch metrics and weight statistics."""

    LEARNING_CURVES = "learning_curves"
    PENALTIES = "penalties"
    SPARSITY = "sparsity"
    WEIGHTS = "weights"


class StudyPlot(StrEnum):
    """The plots of a study, drawn from its members' cross-validated scores and its coefficient paths."""

    CV_CURVE = "cv_curve"
    PATHS = "paths"
    VARIANTS = "variants"


class ImageFormat(StrEnum):
    SVG = "svg"
    PNG = "png"


MEDIA_TYPES = {ImageFormat.SVG: "image/svg+xml", ImageFormat.PNG: "image/png"}
