"""Raw text: the tokenizer, vocabularies, and the Space-Saving sketch that builds them.

The ``text`` source format (``open_source(uri, format="text", vocab="vocab.txt")``)
turns documents into word counts with :func:`tokenize`'s words; :func:`build_vocabulary`
(``onepass vocab``) finds the words worth counting, in one pass with fixed memory.
"""

from onepass.text._space_saving import SpaceSaving
from onepass.text._tokenize import TOKEN_PATTERN, tokenize
from onepass.text._vocabulary import Vocabulary, build_vocabulary, load_vocabulary

__all__ = ["TOKEN_PATTERN", "SpaceSaving", "Vocabulary", "build_vocabulary", "load_vocabulary", "tokenize"]
