"""Chain-of-Thought arithmetic data (the paper's multiplication, and addition and parity)."""
