"""The measure: each tensor's capacity per sample.

Widths from shapes (:mod:`.widths`: elements or bits, one-hot indices), capped by the
weights' ranks (:mod:`.rank`) or the activations' ranks over real samples
(:mod:`.data`), both with one numerical rank (:mod:`.spectrum`).
"""
