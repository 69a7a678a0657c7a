"""Evaluation: results and summaries (pure), the runner and its ms-swift engine adapter, identity, reports."""
