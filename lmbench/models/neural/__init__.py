"""Neural language models in NumPy: layers, recurrent cells with BPTT, optimisers, the recurrent LM."""
