"""Self-contained HTML pages for error analysis: the evaluation report, two runs compared, a GRPO run's completions."""
