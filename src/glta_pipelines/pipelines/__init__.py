"""One Kedro pipeline per stage; each ``pipeline.py`` only wires the nodes of its ``nodes.py``."""
