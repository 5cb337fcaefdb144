"""Training loops and their infrastructure.

Map of the package:

- ``trainer.py``: THE training loop (:func:`fit`): validation every few epochs, early stopping
  with a best-weights snapshot, history rows, progress bar, callbacks. Models supply one epoch,
  a validation and a snapshot.
- ``bpr.py``: the BPR graph baselines' epoch on LightGCN's schedule (:func:`train_bpr_model`).
- ``distributed.py``: data-parallel training (DDP): the process group seen from one rank, the
  torchrun launcher, loss weighting so the DDP mean is the full-batch gradient.
"""
