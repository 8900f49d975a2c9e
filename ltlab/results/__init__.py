"""The results layer: everything that reads finished run directories and tabulates them, above `train/`
(which only trains a run into a run directory) and below the reports, figures and experiments.

- `vocabulary`: the result columns, the primary endpoint, reference rows, labels, the method order;
- `runs`: the one reader of run directories (`finished_runs`, `load_rows`, `summary_row`);
- `paired`: aggregates and paired tables with Holm;
- `tables`: markdown tables and sentences, CSV;
- `probing`: the probes of finished runs (flatness columns, saved probe results).
"""
from .paired import aggregate, paired_table, per_seed, pick_base, reference_difference
from .runs import finished_runs, learning_rates, load_rows, runs_by_method, summary_row, task_of
from .vocabulary import (ACCURACY, COLUMNS, FLATNESS, HIGHER_IS_BETTER, PRIMARY, REFERENCES, is_reference, label,
                         method_order, run_name, summary_label)

__all__ = ["ACCURACY", "COLUMNS", "FLATNESS", "HIGHER_IS_BETTER", "PRIMARY", "REFERENCES", "aggregate", "finished_runs",
           "is_reference", "label", "learning_rates", "load_rows", "method_order", "paired_table", "per_seed",
           "pick_base", "reference_difference", "run_name", "runs_by_method", "summary_label", "summary_row",
           "task_of"]
