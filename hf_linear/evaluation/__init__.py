"""Evaluation: exact match of generated answers (`exact_match`), the language-model report
(`lm_report`: perplexity, samples, text statistics) and the offline `evaluate` metric module."""
