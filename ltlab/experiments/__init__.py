"""Experiments: training many runs and comparing them, above the results layer and the reports.

- `compare`: a paired comparison of methods on the same seeds (and the job runner every experiment uses);
- `sweep`: a grid of paired comparisons;
- `study`: the fair study (tuning on validation, evaluation on fresh seeds).
"""
