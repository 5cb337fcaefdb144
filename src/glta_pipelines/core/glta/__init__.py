"""GLTA: graph-language token alignment on a frozen decoder LLM.

1. **Item-text alignment**: an item projector maps LightGCN item embeddings into the LLM's
   token-embedding space; with the LLM frozen it is trained so that the LLM, reading the item
   token in a prompt, produces the item's title (next-token loss on the title tokens only).
2. **User-item alignment**: a user projector, learned ``profile`` and ``prediction`` tokens and a
   prompt holding the user token and the tokens of the user's most recent training items. The
   **GLLM layer** maps the LLM's last hidden state at the prediction token to logits over all
   items, trained with softmax cross-entropy; every output is an item id, no text is generated.

The GLLM head is residual by default: ``logits = s * <E_u, E_i> + correction(h)`` with the
correction initialised at zero, so training starts exactly at LightGCN's ranking.

Map of the package (read ``model.py`` first, then ``weights.py``):

- ``configuration.py``: :class:`AlignConfig`, :class:`GLLMConfig`, :class:`LoraSettings` and their
  dict form (:func:`to_dict`, :func:`from_dict`) stored inside artifacts.
- ``projector.py``: :class:`Projector` (graph embedding -> LLM token) and its :class:`ProjectorSpec`.
- ``alignment.py``: stage 1, item-text alignment (:func:`train_item_alignment`, greedy decoding checks).
- ``model.py``: :class:`GLLM`; the residual base (user, item) is an explicit argument of ``logits``.
- ``examples.py``: user histories, :class:`GLLMData` and each epoch's mask/holdout examples.
- ``training.py``: stage 2's loss, step, :func:`train_gllm` with early stopping and checkpoints.
- ``scoring.py``: a trained GLLM as a score function (:func:`make_scorer`, :func:`history_scorer`), with
  the hidden-state cache that evaluation, recommendations and validation share.
- ``recommender.py``: recommendations on request, for known users and new users folded in from a
  history (one contract for Python, REST and batch).
- ``data_parallel.py``: the alignment and GLLM jobs as data-parallel (DDP) runs.
- ``weights.py``: LoRA, trainable state, the self-describing artifacts of both stages,
  :func:`build_gllm` and :func:`restore_gllm` (a trained model from its weights file alone).
"""

from glta_pipelines.core.glta.alignment import (
    AlignResult,
    alignment_loss,
    length_bucketed_batches,
    greedy_decode,
    greedy_examples,
    item_texts,
    target_ids,
    train_item_alignment,
)
from glta_pipelines.core.glta.configuration import (
    AlignConfig,
    GLLMConfig,
    LoraSettings,
    from_dict,
    gllm_config_from_params,
    to_dict,
    with_words,
)
from glta_pipelines.core.glta.examples import Example, GLLMData, epoch_examples, user_histories
from glta_pipelines.core.glta.model import GLLM, Base, describe_graph, graph_shape, residual_base
from glta_pipelines.core.glta.projector import Projector, ProjectorSpec, token_norm
from glta_pipelines.core.glta.scoring import history_scorer, make_scorer
from glta_pipelines.core.glta.training import (
    GLLMResult,
    gllm_loss,
    gllm_step,
    load_checkpoint,
    peak_memory_mb,
    save_checkpoint,
    train_gllm,
)
from glta_pipelines.core.glta.weights import (
    GLTA_KIND,
    LORA_PREFIX,
    PROJECTOR_KIND,
    attach_lora,
    build_gllm,
    check_same_llm,
    check_state,
    glta_artifact,
    glta_state_artifact,
    load_projector,
    load_trainable_state,
    lora_state,
    projector_artifact,
    projector_spec,
    require_config,
    restore_gllm,
    trainable_state,
)

__all__ = [
    "GLLM", "GLTA_KIND", "LORA_PREFIX", "PROJECTOR_KIND", "AlignConfig", "AlignResult", "Base", "Example",
    "GLLMConfig", "GLLMData", "GLLMResult", "LoraSettings", "Projector", "ProjectorSpec", "alignment_loss",
    "length_bucketed_batches",
    "attach_lora", "build_gllm", "check_same_llm", "check_state", "describe_graph", "epoch_examples", "from_dict",
    "gllm_config_from_params", "gllm_loss", "gllm_step", "glta_artifact", "glta_state_artifact", "graph_shape", "greedy_decode",
    "greedy_examples", "history_scorer", "item_texts", "load_checkpoint", "load_projector", "load_trainable_state",
    "lora_state", "make_scorer", "peak_memory_mb", "projector_artifact", "projector_spec", "require_config",
    "residual_base", "restore_gllm", "save_checkpoint", "target_ids", "to_dict", "with_words", "token_norm", "train_gllm",
    "train_item_alignment", "trainable_state", "user_histories",
]
