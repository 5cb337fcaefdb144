"""How much training does item-text alignment need before the LLM writes an item's title?

The ``align_tokens`` check shows generic titles ("The Matrix", ...) after the default 3 epochs.
This measures, on a random subset of items and the bundled LLM, how many full passes over each
item the most flexible item token needs before greedy decoding recovers the titles, and what
that would cost for the whole catalogue on this machine:

- ``free``: one free token per item (prompt tuning), started at the mean of its title's token
  embeddings, the upper bound of what any projector could do;
- ``linear`` / ``mlp``: the product's item projectors on the backbone's item embeddings.

Each kind trains on the same items, full batch, with the product's loss (title tokens only) and
prompt template. Prints the loss every 10 steps and, at the end, the share of items whose greedy
decoding starts with the true title; writes ``data/08_reporting/alignment_capacity.json``.

    python experiments/alignment_capacity.py --items 32 --steps 100 --learning-rate 0.03

Exploration code, not a pipeline: nothing here is used by ``kedro run``.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch import nn

from glta_pipelines.core.config import config_from_params
from glta_pipelines.core.glta import (
    AlignConfig,
    Projector,
    alignment_loss,
    greedy_decode,
    item_texts,
    target_ids,
    token_norm,
)
from glta_pipelines.core.llm.backbone import LLMConfig, load_llm
from glta_pipelines.core.llm.prompts import Template

from common import ROOT, open_catalog  # noqa: E402  (the experiments' shared module)


class FreeTokens(nn.Module):
    """One trainable token per item (indexed by position in the subset)."""

    def __init__(self, start: torch.Tensor) -> None:
        super().__init__()
        self.tokens = nn.Parameter(start.clone())

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.tokens[positions]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=32)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=0.03)
    parser.add_argument("--kinds", default="free,linear,mlp")
    parser.add_argument("--seed", type=int, default=2025)
    args = parser.parse_args()

    catalog, params = open_catalog()
    config = config_from_params(AlignConfig, params["align_tokens"]["alignment"], "align_tokens.alignment")
    llm, tokenizer = load_llm(config_from_params(LLMConfig, params["llm"], "llm"))
    llm.eval()
    for p in llm.parameters():
        p.requires_grad_(False)
    texts = item_texts(catalog.load("ingest.items"), catalog.load("graph.item_map"), config.target_template)
    graph_item = catalog.load("pretrain_gnn.backbone_embeddings")["item"]
    template = Template.parse(config.prompt_template, tokenizer, ("item",), "align_tokens.alignment.prompt_template")
    targets = target_ids(tokenizer, texts, config.max_target_tokens)

    chosen = np.sort(np.random.default_rng(args.seed).choice(len(texts), size=args.items, replace=False))
    positions = torch.arange(args.items)
    embed = llm.get_input_embeddings().weight
    norm = token_norm(llm)
    report = {"items": args.items, "steps": args.steps, "learning_rate": args.learning_rate,
              "catalogue_items": len(texts), "kinds": {}}
    for kind in args.kinds.split(","):
        torch.manual_seed(args.seed)
        if kind == "free":
            start = torch.stack([embed[targets[i][:-1]].mean(0) for i in chosen])  # title words, eos dropped
            module, inputs = FreeTokens(start * norm / start.norm(dim=1, keepdim=True)), positions
        else:
            module = Projector(graph_item.shape[1], llm.config.hidden_size, kind).fit_scales(graph_item, norm)
            inputs = graph_item[torch.from_numpy(chosen)]
        optimizer = torch.optim.Adam(module.parameters(), lr=args.learning_rate)
        losses, start_time = [], time.perf_counter()
        for step in range(1, args.steps + 1):
            loss = alignment_loss(llm, template, module(inputs), [targets[i] for i in chosen])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            if step % 10 == 0 or step == 1:
                print(f"{kind} step {step}: loss={losses[-1]:.3f}", flush=True)
        seconds = time.perf_counter() - start_time
        with torch.no_grad():
            tokens = module(inputs)
        pairs = [(texts[i].strip(), greedy_decode(llm, tokenizer, template, token)) for i, token in zip(chosen, tokens)]
        share = float(np.mean([written.startswith(title) for title, written in pairs]))
        items_per_second = args.items * args.steps / seconds
        report["kinds"][kind] = {
            "loss_by_step": losses, "titles_recovered": share, "items_per_second": items_per_second,
            "catalogue_hours_at_these_passes": len(texts) * args.steps / items_per_second / 3600,
            "examples": [{"true": t, "llm": w} for t, w in pairs[:10]]}
        print(f"{kind}: loss {losses[0]:.3f} -> {losses[-1]:.3f}, titles recovered {share:.0%}, "
              f"{items_per_second:.1f} items/s, whole catalogue at {args.steps} passes: "
              f"{report['kinds'][kind]['catalogue_hours_at_these_passes']:.1f} h")
        for title, written in pairs[:10]:
            print(f"  {title!r:45} -> {written!r}")
    out = ROOT / "data/08_reporting/alignment_capacity.json"
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwritten {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
