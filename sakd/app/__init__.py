"""The jobs a user runs, as typed functions taking an options dataclass and returning a result
dataclass; every pass/fail rule lives with its job. No printing here (``sakd.render`` draws
tables, plots and summary lines; ``sakd.cli`` parses options, calls a job and renders it).

- ``train``: ``train_teacher_job``, ``distill_job``      - ``evaluate``: ``evaluate_job``
- ``export``: ``export_checkpoint``                      - ``simulate``: ``simulate_job``
- ``energy``: ``energy_job``                             - ``verify``: ``verify_job``
- ``pipeline``: ``run_pipeline``                         - ``inspect``: ``inspect_job``
- ``catalog``: ``format_rows``, ``neuron_model_rows``, ``model_rows``
"""
