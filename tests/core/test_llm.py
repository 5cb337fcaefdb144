"""The real loading path of the bundled LLM (GGUF -> cached safetensors -> transformers)."""

from pathlib import Path

import pytest
import torch

from glta_pipelines.core.errors import InputError
from glta_pipelines.core.llm.backbone import LLMConfig, bundled_gguf, load_llm, resolve_model, sha256_of

pytestmark = pytest.mark.slow


def test_bundled_model_is_converted_once_keyed_by_sha(bundled_model_dir):
    folder = Path(bundled_model_dir)
    gguf = bundled_gguf("bundled:smollm2-135m-instruct")
    assert folder.name == f"smollm2-135m-instruct-{sha256_of(gguf)[:16]}"
    assert (folder / "config.json").is_file() and list(folder.glob("*.safetensors"))
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")], "staging folder left behind"
    # reused, not converted again
    assert resolve_model(LLMConfig(cache_dir=str(folder.parent))) == folder


def test_load_llm_gives_a_frozen_model_loaded_once(bundled_model_dir):
    config = LLMConfig(cache_dir=str(Path(bundled_model_dir).parent))
    model, tokenizer = load_llm(config)
    assert model is load_llm(config)[0]
    assert model.config.hidden_size == 576 and model.config.num_hidden_layers == 30
    assert not any(p.requires_grad for p in model.parameters())
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0])


def test_missing_model_fails_at_once_saying_where_it_looked(tmp_path):
    with pytest.raises(InputError, match=r"llm\.model.*not a local folder and not in the Hugging Face cache"):
        resolve_model(LLMConfig(model="nobody/no-such-model-xyz", cache_dir=str(tmp_path)))
    with pytest.raises(InputError, match=r"no config\.json"):
        resolve_model(LLMConfig(model=str(tmp_path), cache_dir=str(tmp_path)))
    with pytest.raises(InputError, match=r"llm\.model.*bundled:smollm2-135m-instruct"):
        resolve_model(LLMConfig(model="bundled:gpt-5", cache_dir=str(tmp_path)))


def test_bad_dtype_is_named():
    with pytest.raises(InputError, match=r"llm\.dtype"):
        LLMConfig(dtype="int3").validate()
