"""The language models: the frozen decoder LLM, prompts with soft tokens, and text encoders.

Map of the package:

- ``backbone.py``: model specs (``llm.model``), the bundled GGUF converted once and loaded once per
  process (:func:`load_llm`), :class:`LLMConfig` (dtype, int8 option, device).
- ``quantize.py``: int8 weights with per-token activation scales for forward-only passes.
- ``prompts.py``: templates that mix text with soft tokens (``<user>``, ``<history>``, ``<item>``...).
- ``text_encoder.py``: item text embeddings for the text-aware baselines (MiniLM or the LLM).
"""
