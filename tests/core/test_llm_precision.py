"""The LLM's precision: ``llm.dtype: auto`` by what the CPU computes natively, and int8 weights
(``llm.quantize: int8``) for forward-only passes."""

from pathlib import Path

import pytest
import torch
from torch import nn

from glta_pipelines.core import devices
from glta_pipelines.core.errors import InputError
from glta_pipelines.core.glta import GLLMConfig
from glta_pipelines.core.llm.backbone import LLMConfig, llm_precision, load_llm, loading_config, use_run_cache_dir
from glta_pipelines.core.llm.quantize import Int8Linear, quantize_int8


def test_int8_linear_is_close_to_its_float_layer_and_the_same_with_any_thread_count():
    torch.manual_seed(0)
    linear = nn.Linear(576, 1536)
    x = torch.randn(3, 7, 576)
    int8 = Int8Linear(linear)
    expected = linear(x).detach()
    found = int8(x)
    assert found.shape == expected.shape and found.dtype == x.dtype
    assert (found - expected).norm() / expected.norm() < 0.02
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = int8(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(single, found)  # int32 accumulation: no order-dependent float sums
    assert int8(x[:1, :1]).shape == (1, 1, 1536)  # one token too
    with pytest.raises(RuntimeError, match="no backward"):  # never silently wrong gradients
        int8(x.requires_grad_(True))


def test_quantize_replaces_every_linear_and_keeps_the_rest():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Sequential(nn.Linear(16, 4, bias=False)), nn.Embedding(5, 8))
    assert quantize_int8(model) == 2
    assert isinstance(model[0], Int8Linear) and isinstance(model[2][0], Int8Linear)
    assert isinstance(model[3], nn.Embedding)
    assert model[0](torch.randn(2, 8)).shape == (2, 16)


def test_auto_picks_bfloat16_only_where_the_cpu_computes_it_natively(monkeypatch):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    assert LLMConfig(device="cpu").torch_dtype() == torch.bfloat16
    assert llm_precision({"device": "cpu"}) == "bfloat16 (auto on cpu)"
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)
    assert LLMConfig(device="cpu").torch_dtype() == torch.float32
    assert LLMConfig(device="cpu", dtype="bfloat16").torch_dtype() == torch.bfloat16  # asked for: given
    assert llm_precision({"device": "cpu", "quantize": "int8"}) == (
        "float32 (auto on cpu: no native bfloat16), int8 weights for forward passes")
    assert llm_precision({"dtype": "int3"}) == "invalid llm parameters"


def test_bad_quantize_is_named_and_training_gets_the_unquantised_model():
    with pytest.raises(InputError, match=r"llm\.quantize.*'int4'.*none or int8"):
        LLMConfig(quantize="int4").validate()
    assert LLMConfig(quantize="int8").for_training().quantize == "none"
    assert not GLLMConfig().trains_through_llm()  # the default caches states: int8 applies
    assert GLLMConfig(epochs=2).trains_through_llm()


def test_a_trained_model_keeps_its_precision_where_it_is_served_unless_the_environment_says_otherwise(
        monkeypatch, caplog):
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: True)
    recorded = LLMConfig(device="cpu", cache_dir="/training/machine/llm").recorded()
    assert recorded["dtype"] == "bfloat16"  # auto, as it resolved in training
    assert "cache_dir" not in recorded  # no folder of the training machine travels with the model
    assert LLMConfig(device="cpu", dtype="float32").recorded()["dtype"] == "float32"
    trained = LLMConfig(**recorded)
    monkeypatch.setattr(devices, "cpu_has_native_bf16", lambda: False)  # served on a CPU without native bfloat16
    with caplog.at_level("WARNING"):
        assert loading_config(trained, {}).dtype == "bfloat16"  # the trained precision, not this CPU's auto
    assert "GLTA_LLM_DTYPE=float32" in caplog.text  # ... with the way out named
    assert loading_config(trained, {"GLTA_LLM_DTYPE": "float32"}).torch_dtype() == torch.float32
    assert loading_config(trained, {"GLTA_LLM_QUANTIZE": "int8"}).quantize == "int8"
    with pytest.raises(InputError, match=r"environment variable GLTA_LLM_DTYPE.*'fp8'.*auto or float32"):
        loading_config(trained, {"GLTA_LLM_DTYPE": "fp8"})


def test_a_loaded_model_finds_its_llm_in_this_machines_cache_folder(tmp_path):
    trained = LLMConfig(cache_dir="/training/machine/llm")
    assert loading_config(trained, {"GLTA_LLM_CACHE_DIR": str(tmp_path)}).cache_dir == str(tmp_path)
    assert loading_config(trained, {"XDG_CACHE_HOME": "/x"}).cache_dir == "/x/glta-pipelines/llm"
    assert loading_config(trained, {}).cache_dir == str(Path.home() / ".cache/glta-pipelines/llm")
    use_run_cache_dir(str(tmp_path / "project_llm"))  # inside a pipeline run: the run's llm.cache_dir
    try:
        assert loading_config(trained, {"GLTA_LLM_CACHE_DIR": "/elsewhere"}).cache_dir == str(tmp_path / "project_llm")
    finally:
        use_run_cache_dir(None)
    assert loading_config(trained, {"GLTA_LLM_CACHE_DIR": "/elsewhere"}).cache_dir == "/elsewhere"


def test_an_int8_llm_gives_hidden_states_close_to_float32(tiny_llm_dir):
    base = LLMConfig(model=str(tiny_llm_dir), device="cpu", dtype="float32")
    full, _ = load_llm(base)
    int8, _ = load_llm(LLMConfig(model=str(tiny_llm_dir), device="cpu", dtype="float32", quantize="int8"))
    assert int8 is not full and any(isinstance(m, Int8Linear) for m in int8.modules())
    assert not any(isinstance(m, Int8Linear) for m in full.modules())  # the float model is untouched
    x = torch.randn(2, 9, full.config.hidden_size) * 0.05
    with torch.no_grad():
        a = full.get_decoder()(inputs_embeds=x).last_hidden_state
        b = int8.get_decoder()(inputs_embeds=x).last_hidden_state
    assert torch.nn.functional.cosine_similarity(a.flatten(1), b.flatten(1)).min() > 0.99


@pytest.mark.slow
def test_the_real_llm_in_int8_still_knows_its_facts(bundled_model_dir):
    model, tokenizer = load_llm(LLMConfig(cache_dir=str(Path(bundled_model_dir).parent), quantize="int8", device="cpu"))
    ids = tokenizer("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0])
