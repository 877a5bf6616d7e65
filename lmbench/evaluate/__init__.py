"""Evaluation: perplexity and token accounting (harness), and the probes added beside it."""
