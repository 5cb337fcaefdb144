"""glta-pipelines: LLM-based recommendation by graph-language token alignment (GLTA)."""

__version__ = "0.1.0"
