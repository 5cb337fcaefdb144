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
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.prompts import Template, pad
from glta_pipelines.core.ranking import ranking_metrics

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- projectors
class Projector(nn.Module):
    """Graph embedding (d_in) -> LLM token embedding (d_out): linear ``W e + b`` or a 2-layer MLP.

    Inputs are standardised with fixed statistics of the graph embeddings, and outputs are scaled
    to the typical norm of the LLM's own token embeddings, so a projected token starts in range.
    """

    def __init__(self, d_in: int, d_out: int, kind: str = "linear", hidden: int = 1024) -> None:
        super().__init__()
        if kind not in ("linear", "mlp"):
            raise InputError("parameter projector.kind", repr(kind), "'linear' or 'mlp'")
        self.kind, self.d_out = kind, d_out
        self.net = nn.Linear(d_in, d_out) if kind == "linear" else nn.Sequential(
            nn.Linear(d_in, hidden), nn.GELU(), nn.Linear(hidden, d_out))
        self.register_buffer("mean", torch.zeros(d_in))
        self.register_buffer("std", torch.ones(d_in))
        self.register_buffer("out_scale", torch.ones(()))

    def fit_scales(self, embeddings: torch.Tensor, token_norm: float) -> Projector:
        """Set input standardisation and output scale from data (before training)."""
        with torch.no_grad():
            self.mean.copy_(embeddings.mean(0))
            self.std.copy_(embeddings.std(0).clamp(min=1e-6))
            raw = self.net((embeddings - self.mean) / self.std)
            self.out_scale.copy_(token_norm / raw.norm(dim=1).mean().clamp(min=1e-6))
        return self

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.net((embeddings - self.mean) / self.std) * self.out_scale


def token_norm(llm: nn.Module) -> float:
    """Mean L2 norm of the LLM's input token embeddings."""
    return float(llm.get_input_embeddings().weight.norm(dim=1).mean())


# --------------------------------------------------------------------------- item-text alignment
@dataclass(frozen=True)
class AlignConfig:
    """Item-text alignment (stage ``align_tokens``)."""

    prompt_template: str = "<item> is the movie titled"
    target_template: str = " {title}"
    max_target_tokens: int = 16
    projector_kind: str = "linear"
    learning_rate: float = 1e-3
    batch_size: int = 32
    epochs: int = 3
    n_examples: int = 10  # items whose greedy decoding is logged for a human check
    seed: int = 2025

    def validate(self) -> None:
        for name in ("max_target_tokens", "batch_size", "learning_rate"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter align_tokens.alignment.{name}", getattr(self, name), "a positive number")
        if self.epochs < 0:
            raise InputError("parameter align_tokens.alignment.epochs", self.epochs, "0 (projector left untrained) or more")
        if self.projector_kind not in ("linear", "mlp"):
            raise InputError("parameter align_tokens.alignment.projector_kind", repr(self.projector_kind), "linear or mlp")


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


def _target_ids(tokenizer, texts: list[str], max_tokens: int) -> list[torch.Tensor]:
    eos = tokenizer.eos_token_id
    return [torch.tensor((tokenizer(t, add_special_tokens=False)["input_ids"] + [eos])[:max_tokens]) for t in texts]


def alignment_loss(llm: nn.Module, template: Template, item_tokens: torch.Tensor, targets: list[torch.Tensor]) -> torch.Tensor:
    """Next-token cross-entropy on the target (title) tokens only, given one item token per row."""
    embed = llm.get_input_embeddings()
    device = embed.weight.device
    sequences, label_rows = [], []
    for token, target in zip(item_tokens, targets):
        prompt = template.embed(embed, {"item": token[None]})
        sequences.append(torch.cat([prompt, embed(target.to(device))]))
        label_rows.append(torch.cat([torch.full((prompt.shape[0],), -100), target]))
    embeds, mask, positions = pad(sequences, side="right")
    labels = torch.full(mask.shape, -100, dtype=torch.long)
    for row, lab in enumerate(label_rows):
        labels[row, : lab.shape[0]] = lab
    hidden = llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions).last_hidden_state
    # Vocabulary logits only where a label is predicted (the LM head is most of the cost).
    predict = labels[:, 1:].to(device) != -100
    logits = llm.get_output_embeddings()(hidden[:, :-1][predict])
    return nn.functional.cross_entropy(logits.float(), labels[:, 1:].to(device)[predict])


@dataclass
class AlignResult:
    projector: Projector
    history: pd.DataFrame  # step, epoch, loss
    examples: str  # greedy decodings next to true titles


def train_item_alignment(
    llm: nn.Module, tokenizer, item_embedding: torch.Tensor, texts: list[str], config: AlignConfig,
    on_step: Callable[[int, dict[str, float]], None] | None = None, show_progress: bool | None = None,
) -> AlignResult:
    """Train the item projector with the LLM frozen; return it with its loss history."""
    config.validate()
    device = llm.get_input_embeddings().weight.device
    torch.manual_seed(config.seed)
    template = Template.parse(config.prompt_template, tokenizer, ("item",), "align_tokens.alignment.prompt_template")
    projector = Projector(item_embedding.shape[1], llm.config.hidden_size, config.projector_kind)
    projector.fit_scales(item_embedding, token_norm(llm)).to(device)
    targets = _target_ids(tokenizer, texts, config.max_target_tokens)
    optimizer = torch.optim.AdamW(projector.parameters(), lr=config.learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(config.seed)
    rows, step = [], 0
    total_steps = config.epochs * math.ceil(len(texts) / config.batch_size)
    bar = tqdm(total=total_steps, desc="align items", unit="batch", disable=None if show_progress is None else not show_progress)
    for epoch in range(1, config.epochs + 1):
        for batch in np.array_split(rng.permutation(len(texts)), math.ceil(len(texts) / config.batch_size)):
            start = time.perf_counter()
            tokens = projector(item_embedding[torch.from_numpy(batch)].to(device))
            loss = alignment_loss(llm, template, tokens, [targets[i] for i in batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            row = {"step": step, "epoch": epoch, "loss": loss.item(),
                   "items_per_second": len(batch) / (time.perf_counter() - start)}
            rows.append(row)
            bar.update(1)
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if on_step is not None:
                on_step(step, {"loss": row["loss"], "items_per_second": row["items_per_second"]})
        epoch_loss = np.mean([r["loss"] for r in rows if r["epoch"] == epoch])
        log.info("Item alignment epoch %d: loss=%.4f", epoch, epoch_loss)
    bar.close()
    projector.eval()
    examples = greedy_examples(llm, tokenizer, template, projector, item_embedding, texts, config.n_examples, config.seed)
    return AlignResult(projector, pd.DataFrame(rows, columns=["step", "epoch", "loss", "items_per_second"]), examples)


@torch.no_grad()
def greedy_examples(llm, tokenizer, template: Template, projector: Projector, item_embedding: torch.Tensor,
                    texts: list[str], n: int, seed: int, max_new_tokens: int = 16) -> str:
    """For ``n`` items: what the LLM writes greedily from the item token alone, next to the truth."""
    device = llm.get_input_embeddings().weight.device
    chosen = np.random.default_rng(seed).choice(len(texts), size=min(n, len(texts)), replace=False)
    lines = []
    for index in chosen:
        token = projector(item_embedding[int(index)][None].to(device))[0]
        written = greedy_decode(llm, tokenizer, template, token, max_new_tokens).replace("\n", " ")
        lines.append(f"item {int(index)}\ttrue: {texts[index].strip()}\tLLM: {written}")
    return "\n".join(lines) + "\n"


@torch.no_grad()
def greedy_decode(llm, tokenizer, template: Template, item_token: torch.Tensor, max_new_tokens: int = 16) -> str:
    """What the LLM writes greedily after the prompt holding this one item token (d_llm,)."""
    device = llm.get_input_embeddings().weight.device
    prompt = template.embed(llm.get_input_embeddings(), {"item": item_token[None].to(device)})[None]
    out = llm.generate(inputs_embeds=prompt, attention_mask=torch.ones(prompt.shape[:2], dtype=torch.long, device=device),
                       max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0], skip_special_tokens=True).strip()


# --------------------------------------------------------------------------- user-item alignment (GLLM)
@dataclass(frozen=True)
class LoraSettings:
    """Optional LoRA adapters on the LLM (peft)."""

    enabled: bool = False
    rank: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "v_proj")


@dataclass(frozen=True)
class GLLMConfig:
    """User-item alignment with the GLLM layer (stage ``gllm_finetune``)."""

    prompt_template: str = "User <user> has watched <history>. Profile: <profile>. The next movie is <prediction>"
    history_length: int = 10
    # mask: each step hides a fraction of the user's training items and predicts them;
    # holdout: targets are interactions held out of the backbone LightGCN's pretraining
    target_scheme: str = "mask"
    mask_fraction: float = 0.2
    encoder: str = "llm"  # llm, or mean (ablation: mean of the prompt's graph tokens, no LLM)
    scoring_space: str = "graph"  # graph: against item embeddings; token: against projected item tokens
    residual: bool = True  # logits = scale * LightGCN score + correction (initialised at zero)
    user_projector_kind: str = "linear"
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 32
    epochs: int = 3
    eval_every: int = 1
    patience: int = 2
    scoring_batch_size: int = 64
    resume: bool = False
    seed: int = 2025
    lora: LoraSettings = field(default_factory=LoraSettings)

    def validate(self) -> None:
        choices = {"target_scheme": ("holdout", "mask"), "encoder": ("llm", "mean"), "scoring_space": ("graph", "token"),
                   "user_projector_kind": ("linear", "mlp")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", repr(getattr(self, name)), f"one of {allowed}")
        for name in ("history_length", "learning_rate", "batch_size", "eval_every", "patience", "scoring_batch_size"):
            if not getattr(self, name) > 0:
                raise InputError(f"parameter gllm_finetune.gllm.{name}", getattr(self, name), "a positive number")
        if not 0 < self.mask_fraction < 1:
            raise InputError("parameter gllm_finetune.gllm.mask_fraction", self.mask_fraction, "a fraction in (0, 1)")


def user_histories(interactions: pd.DataFrame, n_users: int) -> list[np.ndarray]:
    """Each user's item indices in time order (ties broken by item index)."""
    ordered = interactions.sort_values(["user_idx", "timestamp", "item_idx"], kind="stable")
    # np.array copies: torch.from_numpy needs a writable array
    groups = ordered.groupby("user_idx")["item_idx"].apply(lambda s: np.array(s, dtype=np.int64))
    empty = np.zeros(0, dtype=np.int64)
    return [groups.get(u, empty) for u in range(n_users)]


class GLLM(nn.Module):
    """Projectors, soft tokens and the GLLM head around a frozen (optionally LoRA-adapted) LLM.

    The LLM is held outside the module's parameters: ``state_dict()`` holds only what trains
    (plus LoRA weights, added by :func:`trainable_state`).
    """

    def __init__(self, llm: nn.Module | None, tokenizer, item_projector: Projector, graph_user: torch.Tensor,
                 graph_item: torch.Tensor, config: GLLMConfig) -> None:
        super().__init__()
        self.config = config
        self._llm = [llm]  # a list keeps the LLM out of parameters and state_dict
        d_gnn = graph_item.shape[1]
        d_llm = item_projector.d_out
        self.graph_user, self.graph_item = graph_user, graph_item  # token inputs (backbone embeddings)
        self.base_user, self.base_item = graph_user, graph_item  # residual base scores (swappable)
        self.item_projector = item_projector
        norm = token_norm(llm) if llm is not None else float(item_projector(graph_item[:256]).norm(dim=1).mean())
        with torch.random.fork_rng(devices=[]):  # reproducible for a seed, global RNG untouched
            torch.manual_seed(config.seed)
            self.user_projector = Projector(d_gnn, d_llm, config.user_projector_kind).fit_scales(graph_user, norm)
            start = torch.randn(2, d_llm) * norm / math.sqrt(d_llm)
            self.head = nn.Linear(d_llm, d_gnn if config.scoring_space == "graph" else d_llm)
        self.profile = nn.Parameter(start[0].clone())
        self.prediction = nn.Parameter(start[1].clone())
        self.norm = nn.LayerNorm(d_llm)
        if config.residual:  # start exactly at the graph's ranking
            nn.init.zeros_(self.head.weight)
            nn.init.zeros_(self.head.bias)
        self.item_bias = nn.Parameter(torch.zeros(graph_item.shape[0]))
        self.graph_scale = nn.Parameter(torch.ones(()))
        self.template = (Template.parse(config.prompt_template, tokenizer, ("user", "history", "profile", "prediction"),
                                        "gllm_finetune.gllm.prompt_template") if config.encoder == "llm" else None)

    @property
    def llm(self) -> nn.Module | None:
        return self._llm[0]

    def use_base(self, user: torch.Tensor, item: torch.Tensor) -> None:
        """Score the residual against these graph embeddings (e.g. LightGCN trained on all of train)."""
        self.base_user, self.base_item = user, item

    def hidden(self, users: torch.Tensor, histories: list[np.ndarray]) -> torch.Tensor:
        """(B, d_llm) representation of each user's prompt at the prediction token."""
        user_tokens = self.user_projector(self.graph_user[users])
        item_tokens = [self.item_projector(self.graph_item[torch.from_numpy(h)]) for h in histories]
        if self.config.encoder == "mean":
            return torch.stack([torch.cat([u[None], t]).mean(0) for u, t in zip(user_tokens, item_tokens)])
        embed = self.llm.get_input_embeddings()
        sequences = [self.template.embed(embed, {"user": u[None], "history": t, "profile": self.profile[None],
                                                 "prediction": self.prediction[None]})
                     for u, t in zip(user_tokens, item_tokens)]
        embeds, mask, positions = pad(sequences, side="left")
        out = self.llm.get_decoder()(inputs_embeds=embeds, attention_mask=mask, position_ids=positions)
        return out.last_hidden_state[:, -1].float()

    def logits(self, users: torch.Tensor, hidden: torch.Tensor) -> torch.Tensor:
        """(B, n_items) GLLM logits: every item scored."""
        z = self.head(self.norm(hidden))
        if self.config.scoring_space == "graph":
            correction = z @ self.graph_item.T
        else:
            correction = z @ self.item_projector(self.graph_item).T / math.sqrt(z.shape[1])
        correction = correction + self.item_bias
        if not self.config.residual:
            return correction
        return self.graph_scale * (self.base_user[users] @ self.base_item.T) + correction


def attach_lora(llm: nn.Module, settings: LoraSettings) -> nn.Module:
    """A LoRA-adapted copy of ``llm`` (the shared frozen LLM stays untouched)."""
    import copy

    from peft import LoraConfig, get_peft_model

    adapted = get_peft_model(copy.deepcopy(llm), LoraConfig(
        r=settings.rank, lora_alpha=settings.alpha, lora_dropout=settings.dropout,
        target_modules=list(settings.target_modules), bias="none"))
    return adapted.base_model.model  # peft injects adapters in place; keep the plain model interface


def trainable_state(model: GLLM) -> dict[str, torch.Tensor]:
    """What a trained GLLM adds to the frozen LLM: its own parameters and buffers, plus LoRA weights."""
    # clone: on CPU, .cpu() returns the live tensor, and a snapshot must not follow training
    state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    if model.llm is not None:
        state.update({f"lora::{n}": p.detach().cpu().clone() for n, p in model.llm.named_parameters() if "lora_" in n})
    return state


def load_trainable_state(model: GLLM, state: dict[str, torch.Tensor]) -> None:
    own = {k: v for k, v in state.items() if not k.startswith("lora::")}
    model.load_state_dict(own)
    lora = {k[len("lora::"):]: v for k, v in state.items() if k.startswith("lora::")}
    if lora:
        params = dict(model.llm.named_parameters())
        missing = sorted(set(lora) - set(params))
        if missing:
            raise InputError("GLTA weights", f"LoRA weights for {missing[:3]}...", "an LLM adapted with the same LoRA settings")
        with torch.no_grad():
            for name, value in lora.items():
                params[name].copy_(value)


def gllm_loss(logits: torch.Tensor, targets: list[np.ndarray], masked: list[np.ndarray]) -> torch.Tensor:
    """Multi-positive softmax cross-entropy over all items; known (non-target) positives masked."""
    rows = torch.repeat_interleave(torch.arange(len(masked)), torch.tensor([len(m) for m in masked]))
    logits = logits.clone()
    if len(rows):
        logits[rows, torch.from_numpy(np.concatenate(masked))] = float("-inf")
    log_probs = torch.log_softmax(logits, dim=1)
    losses = [-log_probs[row, torch.from_numpy(t)].mean() for row, t in enumerate(targets)]
    return torch.stack(losses).mean()


def gllm_step(model: GLLM, optimizer: torch.optim.Optimizer, batch: list[tuple]) -> float:
    """One optimisation step on (user, prompt items, target items, masked items) examples; returns the loss."""
    users = torch.tensor([b[0] for b in batch])
    logits = model.logits(users, model.hidden(users, [b[1] for b in batch]))
    loss = gllm_loss(logits, [b[2] for b in batch], [b[3] for b in batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.item()


def make_scorer(model: GLLM, histories: list[np.ndarray], history_length: int, batch_size: int):
    """Score function for the ranking evaluator: users -> GLLM logits over all items."""
    def score(users: torch.Tensor) -> torch.Tensor:
        model.eval()
        out = []
        with torch.no_grad():
            for lo in range(0, len(users), batch_size):
                chunk = users[lo : lo + batch_size]
                hist = [histories[int(u)][-history_length:] for u in chunk]
                out.append(model.logits(chunk, model.hidden(chunk, hist)).cpu())
        return torch.cat(out)
    return score


@dataclass
class GLLMData:
    """Training examples and validation protocol of the user-item alignment."""

    visible: list[np.ndarray]  # per user, time-ordered items the prompt may show
    targets: list[np.ndarray]  # per user, held-out targets; read by the holdout scheme only
    train: pd.DataFrame  # full training split (masked when scoring valid)
    valid: pd.DataFrame
    n_items: int
    eval_base: tuple[torch.Tensor, torch.Tensor] | None = None  # graph embeddings the residual uses at inference


@dataclass
class GLLMResult:
    model: GLLM
    history: pd.DataFrame
    best_epoch: int


def _epoch_examples(data: GLLMData, config: GLLMConfig, rng: np.random.Generator):
    """(user, history, targets, masked) for this epoch's steps."""
    examples = []
    for user, items in enumerate(data.visible):
        if config.target_scheme == "holdout":
            targets = data.targets[user]
            if len(targets) == 0 or len(items) == 0:
                continue
            examples.append((user, items[-config.history_length:], targets, items))
        else:
            if len(items) < 2:
                continue
            hide = rng.random(len(items)) < config.mask_fraction
            if not hide.any():
                hide[rng.integers(len(items))] = True
            if hide.all():
                hide[rng.integers(len(items))] = False
            shown = items[~hide]
            examples.append((user, shown[-config.history_length:], items[hide], shown))
    order = rng.permutation(len(examples))
    return [examples[i] for i in order]


def train_gllm(
    model: GLLM, data: GLLMData, config: GLLMConfig, checkpoint_path: Path | None = None,
    on_epoch_end: Callable[[int, dict[str, float]], None] | None = None, show_progress: bool | None = None,
) -> GLLMResult:
    """Train the GLLM's trainable parts; early-stop on validation Recall@20; checkpoint each epoch.

    With ``config.resume`` and an existing checkpoint, training continues after its last epoch.
    """
    config.validate()
    params = [p for p in model.parameters() if p.requires_grad]
    if model.llm is not None:
        params += [p for p in model.llm.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    rng = np.random.default_rng(config.seed)
    torch.manual_seed(config.seed)
    rows: list[dict] = []
    start_epoch, best_score, best_epoch, best_state, evals_since_best = 1, -1.0, 0, None, 0

    if config.resume and checkpoint_path is not None and checkpoint_path.is_file():
        saved = torch.load(checkpoint_path, weights_only=False)
        load_trainable_state(model, saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        rng.bit_generator.state = saved["rng"]
        rows, start_epoch = saved["history"], saved["epoch"] + 1
        best_score, best_epoch, best_state, evals_since_best = (saved["best_score"], saved["best_epoch"],
                                                                saved["best_state"], saved["evals_since_best"])
        log.info("Resuming GLLM training after epoch %d from %s", saved["epoch"], checkpoint_path)

    full_histories = user_histories(data.train, len(data.visible))
    for epoch in range(start_epoch, config.epochs + 1):
        if evals_since_best >= config.patience:
            break
        model.train()
        examples = _epoch_examples(data, config, rng)
        start, losses = time.perf_counter(), []
        bar = tqdm(range(0, len(examples), config.batch_size), desc=f"GLLM epoch {epoch}", unit="batch",
                   disable=None if show_progress is None else not show_progress)
        for lo in bar:
            losses.append(gllm_step(model, optimizer, examples[lo : lo + config.batch_size]))
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
        seconds = time.perf_counter() - start
        row = {"epoch": epoch, "loss": float(np.mean(losses)), "seconds": seconds,
               "users_per_second": len(examples) / seconds, "graph_scale": model.graph_scale.item(),
               "head_norm": float(model.head.weight.norm()), "peak_memory_mb": peak_memory_mb()}
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            scorer = make_scorer(model, full_histories, config.history_length, config.scoring_batch_size)
            training_base = (model.base_user, model.base_item)
            if data.eval_base is not None:
                model.use_base(*data.eval_base)
            t0 = time.perf_counter()
            metrics = ranking_metrics(scorer, data.train, data.valid, len(data.visible), data.n_items, [10, 20])
            model.use_base(*training_base)
            row["scoring_users_per_second"] = data.valid["user_idx"].nunique() / (time.perf_counter() - t0)
            row.update({f"valid_{k}": v for k, v in metrics.items()})
            if metrics["recall_at_20"] > best_score:
                best_score, best_epoch, evals_since_best = metrics["recall_at_20"], epoch, 0
                best_state = trainable_state(model)
            else:
                evals_since_best += 1
        rows.append(row)
        log.info("GLLM epoch %d: %s", epoch, ", ".join(f"{k}={v:.4f}" for k, v in row.items() if k != "epoch"))
        if on_epoch_end is not None:
            on_epoch_end(epoch, {k: v for k, v in row.items() if k != "epoch"})
        if checkpoint_path is not None:
            _save_checkpoint(checkpoint_path, {
                "model": trainable_state(model), "optimizer": optimizer.state_dict(), "rng": rng.bit_generator.state,
                "history": rows, "epoch": epoch, "best_score": best_score, "best_epoch": best_epoch,
                "best_state": best_state, "evals_since_best": evals_since_best})
    if best_state is not None:
        load_trainable_state(model, best_state)
    model.eval()
    return GLLMResult(model, pd.DataFrame(rows), best_epoch)


def peak_memory_mb() -> float:
    """Peak memory of this process: CUDA allocations when on GPU, else the peak resident set."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _save_checkpoint(path: Path, state: dict) -> None:
    """Write atomically: a crash mid-save leaves the previous checkpoint intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    tmp.replace(path)


# --------------------------------------------------------------------------- assembly
def gllm_config_from_params(params: dict) -> GLLMConfig:
    """GLLMConfig from ``gllm_finetune.gllm`` parameters (with its nested ``lora`` block)."""
    from glta_pipelines.core.config import config_from_params

    params = dict(params or {})
    lora = config_from_params(LoraSettings, params.pop("lora", None), "gllm_finetune.gllm.lora")
    config = config_from_params(GLLMConfig, params, "gllm_finetune.gllm")
    return GLLMConfig(**{**config.__dict__, "lora": lora})


def build_gllm(llm: nn.Module | None, tokenizer, projector_state: dict[str, torch.Tensor], projector_kind: str,
               graph_user: torch.Tensor, graph_item: torch.Tensor, config: GLLMConfig) -> GLLM:
    """A GLLM around ``llm`` (LoRA-adapted when enabled) with the aligned item projector loaded."""
    projector = Projector(graph_item.shape[1], _projector_out_dim(projector_state), projector_kind)
    projector.load_state_dict(projector_state)
    if config.encoder == "mean":
        llm = None
    elif config.lora.enabled:
        llm = attach_lora(llm, config.lora)
    return GLLM(llm, tokenizer, projector, graph_user, graph_item, config)


def _projector_out_dim(state: dict[str, torch.Tensor]) -> int:
    last = [k for k in state if k.startswith("net") and k.endswith("weight")][-1]
    return int(state[last].shape[0])
