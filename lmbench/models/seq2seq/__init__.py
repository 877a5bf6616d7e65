"""Seq2Seq translation: encoder–decoder of the shared recurrent cells, attention, greedy and beam search."""
