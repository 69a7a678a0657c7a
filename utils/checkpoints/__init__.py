"""Checkpoint conversion rules and the release's facts (remote-code Phi-4-MM -> native layout)."""
