"""Data: where examples come from and how they become training batches.

* `arithmetic/` — the Chain-of-Thought arithmetic formats (one registry), their tokenizer, the
  hash split, the vectorised builder, the endless stream and the dataset card;
* `tinystories.py` — TinyStories stories → tokenizer → fixed-length windows;
* `sources.py` — one small class per kind of `dataset:` section of a training config;
* `io.py` — saving built datasets (atomically) and pushing them to the Hub.
"""
