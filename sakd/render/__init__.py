"""Every table, plot and summary line sakd shows: terminal output laid out to fit 80 columns
(and piped logs, which do not wrap mid-line), JSON stays with the jobs, PNG charts. Renderers
take the jobs' result dataclasses (``sakd.app``) and a ``rich`` console."""
