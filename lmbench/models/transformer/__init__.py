"""Transformer blocks (embeddings, LayerNorm, attention, feed-forward) and the models built from them."""
