"""From raw files to the implicit-feedback graph and its split.

Map of the package:

- ``sources/``: dataset adapters (one per format, registered in ``ADAPTERS``) that stream raw
  files into the two ingest tables (interactions, items); its ``__init__.py`` maps it.
- ``interactions.py``: filtering (rating threshold, k-core), id maps, per-user splits.
- ``recbole_export.py``: the split as RecBole atomic files.
"""
