"""Stage 1, item-text alignment: train the item projector so the frozen LLM reads an item token as its title."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from glta_pipelines.core.training.distributed import SINGLE, Group, shared_step
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta.configuration import AlignConfig
from glta_pipelines.core.glta.projector import Projector, token_norm
from glta_pipelines.core.llm.prompts import Template, pad
from glta_pipelines.core.reproducibility import deterministic

log = logging.getLogger(__name__)


def item_texts(items: pd.DataFrame, item_map: pd.DataFrame, template: str) -> list[str]:
    """The target text of every item index, from ``template`` filled with its columns."""
    table = item_map.merge(items, on="item_id", how="left").sort_values("item_idx")
    texts = []
    for row in table.itertuples(index=False):
        fields = {k: ("" if pd.isna(v) else v) for k, v in row._asdict().items()}
        fields["title"] = fields.get("title") or str(row.item_id)
        try:
            texts.append(template.format(**fields))
        except KeyError as missing:
            raise InputError("parameter align_tokens.alignment.target_template", repr(template),
                             f"fields among {sorted(fields)} (unknown {missing})") from None
    return texts


def target_ids(tokenizer, texts: list[str], max_tokens: int) -> list[torch.Tensor]:
    """Token ids of each target text followed by EOS, cut to ``max_tokens`` (the loss's labels)."""
    eos = tokenizer.eos_token_id
    return [torch.tensor((tokenizer(t, add_special_tokens=False)["input_ids"] + [eos])[:max_tokens]) for t in texts]


def alignment_loss(llm: nn.Module, template: Template, item_tokens: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy on the target (title) tokens only, given one item token per row."""
    embed = llm.get_input_embeddings()
    device = embed.weight.device
    sequences, label_rows = [], []
    for token, target in zip(item_tokens, targets):
        prompt = template.embed(embed, {"item": token[None].to(embed.weight.dtype)})
        sequences.append(torch.cat([prompt, embed(target.to(device))]))
        label_rows.append(torch.cat([torch.full((prompt.shape[0],), -100), target]))
    embeds, mask, positions = pad(sequences, side="right")
    embeds = embeds.to(embed.weight.dtype)  # bf16 LLMs on CUDA take bf16 inputs
    labels = torch.full(mask.shape, -100, dtype=torch.long)
    for row, lab in enumerate(label_rows):
        labels[row, : lab.shape[0]] = lab
    hidden = llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    # Vocabulary logits only where a label is predicted (a 49k-wide matmul per position).
    predict = labels[:, 1:].to(device) != -100
    logits = llm.get_output_embeddings()(hidden[:, :-1][predict])
    return nn.functional.cross_entropy(logits.float(), labels[:, 1:].to(device)[predict])


def title_token_means(llm: nn.Module, targets: list[torch.Tensor], eos_token_id: int | None) -> torch.Tensor:
    """(n_items, d_llm): the mean of each title's own input-token embeddings (EOS left out), a free text target."""
    embed = llm.get_input_embeddings()
    device = embed.weight.device
    with torch.no_grad():
        rows = []
        for ids in targets:
            kept = ids[ids != eos_token_id] if eos_token_id is not None and (ids != eos_token_id).any() else ids
            rows.append(embed(kept.to(device)).float().mean(0))
    return torch.stack(rows)


def fit_loss(tokens: torch.Tensor, text: torch.Tensor, objective: str, temperature: float) -> torch.Tensor:
    """``regress``: mean squared error to each item's text vector; ``contrast``: InfoNCE of each
    item's token against all items' text vectors (cosine over ``temperature``), its own the positive."""
    if objective == "regress":
        return (tokens - text).pow(2).sum(1).mean() / text.pow(2).sum(1).mean()
    logits = nn.functional.normalize(tokens, dim=1) @ nn.functional.normalize(text, dim=1).T / temperature
    return nn.functional.cross_entropy(logits, torch.arange(len(tokens), device=tokens.device))


def fit_projector(projector: Projector, item_embedding: torch.Tensor, text: torch.Tensor, config: AlignConfig,
                  show_progress: bool | None = None) -> list[dict[str, float]]:
    """``config.fit_epochs`` full-batch steps of ``config.objective`` on cached text vectors (seconds, not hours)."""
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.fit_learning_rate, weight_decay=0.0)
    rows = []
    inputs = item_embedding.to(text.device)
    for epoch in tqdm(range(1, config.fit_epochs + 1), desc=f"align items ({config.objective})", unit="epoch",
                      disable=None if show_progress is None else not show_progress):
        start = time.perf_counter()
        loss = fit_loss(projector(inputs), text, config.objective, config.contrast_temperature)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        rows.append({"step": epoch, "epoch": epoch, "loss": loss.item(), "phase": config.objective,
                     "items_per_second": len(inputs) / (time.perf_counter() - start)})
    return rows


BUCKET_BATCHES = 8  # batches whose items are sorted by length together (see length_bucketed_batches)


def length_bucketed_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator) -> list[np.ndarray]:
    """One epoch's batches: every item once, in random order, each batch of similar target length.

    A batch is padded to its longest title, and MovieLens titles run from 1 to 16 tokens (median
    5): random batches spent about 40% of the LLM's work on padding. Items are shuffled, then
    each run of ``BUCKET_BATCHES`` batches is sorted by length before it is cut, and the batches
    are shuffled again, so every epoch still sees new random groupings.
    """
    order = rng.permutation(len(lengths))
    span = batch_size * BUCKET_BATCHES
    batches = []
    for lo in range(0, len(order), span):
        bucket = order[lo : lo + span]
        bucket = bucket[np.argsort(lengths[bucket], kind="stable")]
        batches += [bucket[i : i + batch_size] for i in range(0, len(bucket), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


@dataclass
class AlignResult:
    projector: Projector
    history: pd.DataFrame  # step, epoch, loss, phase (regress/contrast, then generate)
    examples: str  # greedy decodings next to true titles
    title_hit_rate: float = float("nan")  # share of the checked items whose decoding starts with the title


def train_item_alignment(
    llm: nn.Module, tokenizer, item_embedding: torch.Tensor, texts: list[str], config: AlignConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None, show_progress: bool | None = None,
    group: Group = SINGLE,
) -> AlignResult:
    """Train the item projector with the LLM frozen; return it with its loss history (bit-reproducible for a seed).

    In a data-parallel ``group`` (one call per rank, see :mod:`~glta_pipelines.core.glta.data_parallel`)
    each generate batch is shared out over the ranks and DDP averages the gradients; the
    full-batch fit phase runs whole on every rank (seconds); rank 0 alone reports steps and decodes
    the check examples.
    """
    with deterministic():
        return _train_item_alignment(llm, tokenizer, item_embedding, texts, config, on_step, show_progress, group)


def _train_item_alignment(llm: nn.Module, tokenizer, item_embedding: torch.Tensor, texts: list[str], config: AlignConfig,
                          on_step: Callable[[int, dict[str, float]], None] | None,
                          show_progress: bool | None, group: Group) -> AlignResult:
    config.validate()
    if not group.is_main:
        on_step, show_progress = None, False
    device = llm.get_input_embeddings().weight.device
    torch.manual_seed(config.seed)
    template = Template.parse(config.prompt_template, tokenizer, ("item",), "align_tokens.alignment.prompt_template")
    projector = Projector(item_embedding.shape[1], llm.config.hidden_size, config.projector_kind)
    projector.fit_scales(item_embedding, token_norm(llm)).to(device)
    targets = target_ids(tokenizer, texts, config.max_target_tokens)
    rows: list[dict] = []
    if config.objective != "generate" and config.fit_epochs:
        text = title_token_means(llm, targets, tokenizer.eos_token_id)
        rows = fit_projector(projector, item_embedding, text, config, show_progress)
        log.info("Item alignment (%s): loss %.4f -> %.4f in %d epochs", config.objective, rows[0]["loss"],
                 rows[-1]["loss"], len(rows))
        if on_step is not None:
            for row in rows:
                on_step(row["step"], {"fit_loss": row["loss"]})
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.learning_rate, weight_decay=0.0)
    module = group.wrap(projector)
    rng = np.random.default_rng(config.seed)  # the same on every rank: every rank draws the whole batch
    step = len(rows)
    lengths = np.array([len(t) for t in targets])
    total_steps = config.epochs * len(length_bucketed_batches(lengths, config.batch_size, np.random.default_rng(0)))
    bar = tqdm(total=total_steps, desc="align items", unit="batch", disable=None if show_progress is None else not show_progress)
    for epoch in range(1, config.epochs + 1):
        for batch in length_bucketed_batches(lengths, config.batch_size, rng):
            start = time.perf_counter()

            def loss_of(rows: np.ndarray) -> torch.Tensor:
                tokens = module(item_embedding[torch.from_numpy(rows)].to(device))
                return alignment_loss(llm, template, tokens, [targets[i] for i in rows])

            # the loss is a mean over target tokens: each rank's share is weighted by its tokens
            loss = shared_step(optimizer, batch, group, loss_of, size=lambda rows: int(lengths[rows].sum()))
            if group.distributed:
                loss = float(group.sum(torch.tensor([loss], dtype=torch.float64)))
            step += 1
            row = {"step": step, "epoch": epoch, "loss": loss, "phase": "generate",
                   "items_per_second": len(batch) / (time.perf_counter() - start)}
            rows.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if on_step is not None:
                on_step(step, {"loss": row["loss"], "items_per_second": row["items_per_second"]})
        epoch_loss = np.mean([r["loss"] for r in rows if r["epoch"] == epoch and r["phase"] == "generate"])
        log.info("Item alignment epoch %d: loss=%.4f", epoch, epoch_loss)
    bar.close()
    projector.eval()
    examples, hits = "", float("nan")
    if group.is_main:
        examples, hits = greedy_examples(llm, tokenizer, template, projector, item_embedding, texts, config.n_examples,
                                         config.seed)
    history = pd.DataFrame(rows, columns=["step", "epoch", "loss", "phase", "items_per_second"])
    return AlignResult(projector, history, examples, hits)


@torch.no_grad()
def greedy_examples(llm, tokenizer, template: Template, projector: Projector, item_embedding: torch.Tensor,
                    texts: list[str], n: int, seed: int, max_new_tokens: int = 16) -> tuple[str, float]:
    """For ``n`` items: what the LLM writes greedily from the item token alone, next to the truth,
    and the share of them whose decoding starts with the true title (case and spacing ignored)."""
    device = llm.get_input_embeddings().weight.device
    chosen = np.random.default_rng(seed).choice(len(texts), size=min(n, len(texts)), replace=False)
    lines, hits = [], 0
    for index in chosen:
        token = projector(item_embedding[int(index)][None].to(device))[0]
        written = greedy_decode(llm, tokenizer, template, token, max_new_tokens).replace("\n", " ")
        hit = starts_with_title(written, texts[index])
        hits += hit
        lines.append(f"item {int(index)}\t{'HIT' if hit else 'miss'}\ttrue: {texts[index].strip()}\tLLM: {written}")
    return "\n".join(lines) + "\n", hits / max(len(chosen), 1)


def starts_with_title(written: str, title: str) -> bool:
    """Whether ``written`` begins with ``title``, ignoring case and runs of whitespace."""
    def norm(text: str) -> str:
        return " ".join(text.lower().split())

    return bool(norm(title)) and norm(written).startswith(norm(title))


@torch.no_grad()
def greedy_decode(llm, tokenizer, template: Template, item_token: torch.Tensor, max_new_tokens: int = 16) -> str:
    """What the LLM writes greedily after the prompt holding this one item token (d_llm,)."""
    device = llm.get_input_embeddings().weight.device
    embed = llm.get_input_embeddings()
    prompt = template.embed(embed, {"item": item_token[None].to(device, embed.weight.dtype)})[None]
    out = llm.generate(inputs_embeds=prompt, attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=device),
                       max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0], skip_special_tokens=True).strip()
