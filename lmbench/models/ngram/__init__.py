"""Count-based n-gram language models: counting, smoothing methods, back-off tables, ARPA files."""
