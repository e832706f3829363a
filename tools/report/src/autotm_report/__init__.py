"""autotm-report: the AutoTM paper's figures and an offline HTML report from runs, plans, profiles.

The report reads the files the other tools write (run.json, plan.json, profile folders) through
the contracts in autotm-schemas only; it never imports another tool.
"""

__version__ = "0.1.0"
