"""Text (token-sequence) sources and metrics for model-collapse experiments."""
