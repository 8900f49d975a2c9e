"""Reports and figures written from run directories: a comparison's report.md, the study's study.md, the figures."""
from .comparison import Report, write_report

__all__ = ["Report", "write_report"]
