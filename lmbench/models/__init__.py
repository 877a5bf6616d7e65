"""Language models: the shared interface, the registry, and the built-in families."""
