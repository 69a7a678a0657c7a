"""Annotation formats, validation, hard-example sampling, GRPO rows, synthetic data, prompt budgets (pure Python)."""
