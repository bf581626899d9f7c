"""Notebook widgets: chip/calibration map, calibration history, live job monitor, result views.

Plain ipywidgets + matplotlib (no front-end build); every widget also renders as static HTML
where no widget manager runs (nbviewer, nbconvert).
"""
from qmio_lab.widgets.calibration import CalibrationHistory, CalibrationView, chip_svg
from qmio_lab.widgets.jobs import JobMonitor, JobRow, JobState, read_job_state
from qmio_lab.widgets.reprs import (
    calibration_html, job_html, jobs_html, register_formatters, result_html, status_html,
    unregister_formatters,
)
from qmio_lab.widgets.results import (
    EstimatorView, ResultComparison, ResultView, compare, total_variation_distance, view,
)

__all__ = [
    "CalibrationHistory", "CalibrationView", "EstimatorView", "JobMonitor", "JobRow", "JobState",
    "ResultComparison", "ResultView", "calibration_html", "chip_svg", "compare", "job_html",
    "jobs_html", "register_formatters", "result_html", "read_job_state", "status_html",
    "total_variation_distance", "unregister_formatters", "view",
]
