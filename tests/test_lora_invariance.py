"""LoRA is embedded from ΔW = s·B·A: the rank basis, the rank and the init do not matter."""

import pytest
import torch

from taskemb_hub import EmbeddingOptions, TaskEmbedding
from taskemb_hub.methods.lora import exact_similarity, lora_factors

PREFIX = "base_model.model.bert.encoder.layer.{}.attention.self.{}"
MODULES = [(layer, name) for layer in range(2) for name in ("query", "value")]


def adapter(r=4, alpha=8, d=48, seed=0, deltas=None):
    """A LoRA state dict; with `deltas` given, factors are an exact rank-r factorisation of them."""
    g = torch.Generator().manual_seed(seed)
    weights, deltas_out = {}, {}
    for layer, name in MODULES:
        key = PREFIX.format(layer, name)
        if deltas is None:
            b, a = torch.randn(d, r, generator=g, dtype=torch.float64), torch.randn(r, d, generator=g, dtype=torch.float64)
        else:  # factorise the given ΔW/scaling at rank r via SVD
            u, s, vh = torch.linalg.svd(deltas[key] / (alpha / r))
            b, a = u[:, :r] * s[:r], vh[:r]
        weights[f"{key}.lora_A.weight"], weights[f"{key}.lora_B.weight"] = a, b
        deltas_out[key] = (alpha / r) * b @ a
    config = {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "base_model_name_or_path": "tiny"}
    return weights, config, deltas_out


def embed(weights, config, **options):
    return TaskEmbedding.from_state_dict({k: v.float() for k, v in weights.items()}, config, task="t",
                                         options=EmbeddingOptions(**options))


def test_rotating_the_rank_basis_gives_the_same_embedding():
    weights, config, _ = adapter()
    rotated = {}
    g = torch.Generator().manual_seed(7)
    for key, value in weights.items():
        if key.endswith("lora_A.weight"):
            q, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=torch.float64))
            r_mat = q @ torch.diag(torch.tensor([0.5, 2.0, 1.0, 3.0], dtype=torch.float64))  # invertible, not orthogonal
            b_key = key.replace("lora_A", "lora_B")
            rotated[b_key] = weights[b_key] @ r_mat
            rotated[key] = torch.linalg.inv(r_mat) @ value
    a, b = embed(weights, config), embed(rotated, config)
    assert torch.allclose(a.vector, b.vector, atol=1e-5)
    assert a.similarity(b) == pytest.approx(1.0, abs=1e-6)


def test_a_different_rank_with_the_same_delta_w_gives_the_same_embedding():
    weights4, config4, deltas = adapter(r=4, alpha=8)
    weights8, config8, deltas8 = adapter(r=8, alpha=32, deltas=deltas)  # zero-padded rank, other alpha
    for key in deltas:
        assert torch.allclose(deltas[key], deltas8[key], atol=1e-8)
    a, b = embed(weights4, config4), embed(weights8, config8)
    assert a.signature == b.signature
    assert torch.allclose(a.vector, b.vector, atol=1e-5)


def test_similarity_to_itself_is_one_and_to_another_adapter_is_not():
    a = embed(*adapter(seed=0)[:2])
    b = embed(*adapter(seed=1)[:2])
    assert a.similarity(a) == pytest.approx(1.0, abs=1e-6)
    assert abs(a.similarity(b)) < 0.5


def test_exact_gram_similarity_matches_the_dense_delta_w():
    w1, c1, d1 = adapter(seed=0)
    w2, c2, d2 = adapter(seed=1)
    dense = sum(torch.nn.functional.cosine_similarity(d1[k].flatten(), d2[k].flatten(), dim=0) for k in d1) / len(d1)
    exact = exact_similarity(lora_factors(w1, c1), lora_factors(w2, c2))
    assert exact == pytest.approx(float(dense), abs=1e-9)


def test_sketch_cosine_tracks_the_exact_cosine():
    w1, c1, d1 = adapter(seed=0)
    # a second adapter that shares part of the first one's update
    w2, c2, _ = adapter(seed=0, deltas={k: v + 0.8 * adapter(seed=5)[2][k] for k, v in d1.items()})
    exact = exact_similarity(lora_factors(w1, c1), lora_factors(w2, c2))
    sketched = embed(w1, c1, sketch_dim=32).similarity(embed(w2, c2, sketch_dim=32))
    assert 0.3 < exact < 0.95
    assert sketched == pytest.approx(exact, abs=0.1)


def test_rslora_and_alpha_pattern_change_the_scaling():
    weights, config, _ = adapter()
    plain = lora_factors(weights, config)
    rs = lora_factors(weights, config | {"use_rslora": True})
    patterned = lora_factors(weights, config | {"alpha_pattern": {"query": 4}})
    name = next(iter(plain))
    assert rs[name][2] == pytest.approx(8 / 2)  # alpha / sqrt(r)
    query = [n for n in plain if n.endswith("query")][0]
    assert patterned[query][2] == pytest.approx(1.0) and plain[query][2] == pytest.approx(2.0)


def psd_update_adapter(generator, d=64, r=8, modules=MODULES):
    """LoRA factors of ΔW = U·Uᵀ on square d×d modules (q/v projections of a BERT are square)."""
    weights = {}
    for layer, name in modules:
        key = PREFIX.format(layer, name)
        u = torch.randn(d, r, generator=generator, dtype=torch.float64)
        weights[f"{key}.lora_A.weight"], weights[f"{key}.lora_B.weight"] = u.T.clone(), u.clone()
    return weights, {"peft_type": "LORA", "r": r, "lora_alpha": r, "base_model_name_or_path": "tiny"}


def test_sketch_is_unbiased_on_square_modules_over_many_random_pairs():
    """The sketch's cosine must match the exact ΔW cosine on average, pair after pair.

    Unrelated PSD updates (true cosine about 0.1 at d=64, 0.02 at MiniLM's 384) are the hard case: when G_out = G_in the
    sketch gains (tr X·tr Y + ⟨X, Yᵀ⟩)/k, which lifted such pairs to a cosine of about 0.33.
    Pairs sharing half their update check that real similarity survives the sketch.
    """
    g = torch.Generator().manual_seed(123)
    errors, exacts = [], []
    for i in range(40):
        (w1, c1), (w2, c2) = psd_update_adapter(g), psd_update_adapter(g)
        if i % 2:  # a related pair: the second update shares the first one's factors
            w2 = {k: torch.cat([w1[k], v], dim=0 if k.endswith("lora_A.weight") else 1) for k, v in w2.items()}
            c2 = c2 | {"r": 16, "lora_alpha": 16}
        exact = exact_similarity(lora_factors(w1, c1), lora_factors(w2, c2))
        sketched = embed(w1, c1).similarity(embed(w2, c2))
        exacts.append(exact)
        errors.append(sketched - exact)
    mean_error = sum(errors) / len(errors)
    assert min(exacts) < 0.15 and max(exacts) > 0.5, "the pairs span unrelated and related updates"
    assert abs(mean_error) < 0.03, f"sketch cosine is biased by {mean_error:+.3f} on average"
    assert max(abs(e) for e in errors) < 0.15
