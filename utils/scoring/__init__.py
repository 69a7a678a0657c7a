"""What a reward computes: the answer parser, the answer and format rewards, the KG reward (pure Python)."""
