"""Prototype: can the LLM read more of a user's history than the 10 latest items?

Two variants of the GLLM prompt, trained with the ``mask`` scheme on a finished run's outputs:
- ``--summary 1``: the history slot starts with one pooled token, the mean of the projected tokens
  of every shown training item, followed by the latest ``--history-length`` item tokens;
- ``--history-length 50``: simply a longer prompt (about 2.5x the compute of 10).
``--user 0`` drops the user token (the LightGCN user embedding has seen the hidden targets).

``--residual 1`` trains the correction on top of the graph score, as the product does.
``--residual 0`` trains the GLLM alone (denoising: hidden items predicted from the shown ones)
and fuses it afterwards with LightGCN, z-scored per user, at several weights.

Every epoch prints validation and test Recall@20 / NDCG@20 (test for insight only: a real
selection would look at validation alone).

    python experiments/prototype_llm_full_history.py --residual 1 --summary 1 --user 0 --epochs 3
    python experiments/prototype_llm_full_history.py --residual 0 --summary 0 --user 0 --history-length 50

Exploration code, not a pipeline: nothing here is used by ``kedro run``.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

import numpy as np
import torch

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta import (
    GLLM,
    GLLMConfig,
    GLLMData,
    check_same_llm,
    epoch_examples,
    gllm_step,
    load_projector,
    user_histories,
)
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from glta_pipelines.core.llm.prompts import pad

from common import Split, open_catalog, zscore  # noqa: E402  (the experiments' shared module)


class FullHistoryGLLM(GLLM):
    """GLLM whose prompts take a user's whole shown history and may pool it into one token."""

    summary: bool = True
    user_token: bool = False

    def hidden(self, users: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
        user_tokens = self.user_projector(self.graph_user[users])
        history_tokens = []
        for items in histories:
            tokens = self.item_projector(self.graph_item[torch.from_numpy(items)])
            latest = tokens[-self.config.history_length:]
            history_tokens.append(torch.cat([tokens.mean(0, keepdim=True), latest]) if self.summary else latest)
        embed = self.llm.get_input_embeddings()
        sequences = [self.template.embed(embed, {"user": u[None] if self.user_token else u[:0], "history": t,
                                                 "profile": self.profile[None], "prediction": self.prediction[None]})
                     for u, t in zip(user_tokens, history_tokens)]
        embeds, mask, positions = pad(sequences, side="left")
        out = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state[:, -1].float()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residual", type=int, default=1)
    parser.add_argument("--summary", type=int, default=1)
    parser.add_argument("--user", type=int, default=0)
    parser.add_argument("--history-length", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--projector-version", help="version of align_tokens.item_projector (default: latest)")
    args = parser.parse_args()

    catalog, params = open_catalog()
    n_users, n_items = len(catalog.load("graph.user_map")), len(catalog.load("graph.item_map"))
    split = Split(catalog.load("graph.train"), catalog.load("graph.valid"), catalog.load("graph.test"), n_users, n_items)
    lightgcn, backbone = catalog.load("pretrain_gnn.embeddings"), catalog.load("pretrain_gnn.backbone_embeddings")
    projector_artifact = catalog.load("align_tokens.item_projector", args.projector_version)
    projector = load_projector(projector_artifact)  # kind and sizes from the artifact, not the parameters
    llm_config = config_from_params(LLMConfig, params["llm"], "llm")
    check_same_llm(projector_artifact, llm_config)
    llm, tokenizer = load_llm(llm_config)
    config = GLLMConfig(residual=bool(args.residual), learning_rate=args.learning_rate,
                        history_length=args.history_length, epochs=args.epochs)
    FullHistoryGLLM.summary, FullHistoryGLLM.user_token = bool(args.summary), bool(args.user)
    model = FullHistoryGLLM(llm, tokenizer, projector, backbone["user"], backbone["item"], config)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.learning_rate)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    train_histories = user_histories(split.train, n_users)
    test_histories = user_histories(split.seen_for_test, n_users)
    data = GLLMData(train_histories, [], split.train, split.valid, n_items)
    base = lightgcn["user"] @ lightgcn["item"].T

    @torch.no_grad()
    def all_logits(histories: list[np.ndarray]) -> torch.Tensor:
        """Every user's logits, the residual on LightGCN trained on all of train (as evaluation does)."""
        model.eval()
        eval_base = (lightgcn["user"], lightgcn["item"])
        return torch.cat([model.logits(u, model.hidden(u, [histories[int(x)] for x in u]), eval_base)
                          for u in torch.arange(n_users).split(64)])

    for epoch in range(1, args.epochs + 1):
        model.train()
        started, losses = time.perf_counter(), []
        # the product's mask sampling, with the whole shown history kept (the model cuts it)
        examples = epoch_examples(data, replace(config, history_length=10**9), rng)
        for lo in range(0, len(examples), config.batch_size):
            losses.append(gllm_step(model, optimizer, examples[lo : lo + config.batch_size]))
        valid_scores, test_scores = all_logits(train_histories), all_logits(test_histories)
        print(f"epoch {epoch}: loss {np.mean(losses):.3f}, {time.perf_counter() - started:.0f} s, "
              f"{'GLTA' if args.residual else 'GLLM alone'} {split.score(valid_scores, test_scores)}", flush=True)
        if not args.residual:
            for weight in (0.1, 0.2, 0.3, 0.5, 0.75):
                fused = split.score(zscore(base) + weight * zscore(valid_scores), zscore(base) + weight * zscore(test_scores))
                print(f"  LightGCN + {weight} GLLM: {fused}", flush=True)


if __name__ == "__main__":
    main()
