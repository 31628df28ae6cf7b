"""Registry and cards: every card builds, dims follow the architecture, tiny stand-ins are sane."""

import numpy as np
import pytest
import torch

from raypath.encoders import build_encoder, get_card, list_cards, register
from raypath.encoders.registry import _assemble

REAL = [card.name for card in list_cards(tiny=False)]
TINY = [card.name for card in list_cards(tiny=True)]
# Parameter counts published on the model cards / papers (millions), and trunk widths.
PUBLISHED = {
    "uni": (303, 1024), "uni2-h": (681, 1536), "virchow2": (631, 1280), "h-optimus-0": (1134, 1536),
    "h-optimus-1": (1134, 1536), "phikon-v2": (303, 1024), "hibou-l": (303, 1024),
    "conch": (86, 768), "prov-gigapath": (1134, 1536),
}


def test_required_families_each_have_a_real_and_a_tiny_card():
    assert set(REAL) == set(PUBLISHED)
    assert set(TINY) == {f"tiny-{name}" for name in REAL}
    for name in TINY:
        card = get_card(name)
        assert card.tiny and card.parent == name.removeprefix("tiny-") and card.hub_id is None
        assert card.family == get_card(card.parent).family


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbone_produces_the_card_dim(name, tiles):
    encoder = build_encoder(name)
    out = encoder(encoder.preprocess(tiles))
    assert out.shape == (len(tiles), encoder.card.embed_dim) and out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert encoder.card.architecture == get_card(encoder.card.parent).architecture


@pytest.mark.parametrize("name", REAL)
def test_real_architecture_matches_the_card(name):
    """Built on the meta device (no memory, no weights): width, parameter count, output dim."""
    card = get_card(name)
    with torch.device("meta"):
        encoder = _assemble(card)
        out = encoder(torch.empty(2, 3, card.input_size, card.input_size))
    params_m, width = PUBLISHED[name]
    trunk_params = sum(p.numel() for p in encoder.backbone.parameters()) / 1e6
    assert encoder.backbone.num_features == width
    assert abs(trunk_params - params_m) / params_m < 0.02
    assert tuple(out.shape) == (2, card.embed_dim)


def test_output_rules_of_the_real_cards():
    assert get_card("virchow2").embed_dim == 2 * 1280 and get_card("virchow2").output == "cls+mean"
    assert get_card("conch").embed_dim == 512 and get_card("conch").output.startswith("attn-pool")
    assert {get_card(n).embed_dim for n in ("uni", "phikon-v2", "hibou-l")} == {1024}
    giants = ("uni2-h", "h-optimus-0", "h-optimus-1", "prov-gigapath")
    assert {get_card(n).embed_dim for n in giants} == {1536}
    for card in list_cards(tiny=False):
        assert card.mpp > 0 and card.licence and card.source and len(card.mean) == len(card.std) == 3


def test_virchow_rule_excludes_register_tokens():
    encoder = build_encoder("tiny-virchow2")
    tokens = torch.randn(2, 5 + 16, 32)
    expected = torch.cat([tokens[:, 0], tokens[:, 5:].mean(1)], dim=-1)
    torch.testing.assert_close(encoder.pool(tokens), expected)


def test_lookup_is_case_insensitive_and_unknown_names_list_the_known_ones():
    assert get_card("UNI") is get_card("uni")
    with pytest.raises(KeyError, match="tiny-uni"):
        get_card("no-such-fm")


def test_registering_a_name_twice_fails():
    with pytest.raises(ValueError, match="'uni' is already registered"):
        register(lambda: get_card("uni"))


def test_tiny_init_is_deterministic_by_seed(tiles):
    first, again, other = (build_encoder("tiny-uni", seed=s) for s in (0, 0, 1))
    assert first.weights_hash == again.weights_hash != other.weights_hash
    x = first.preprocess(tiles)
    torch.testing.assert_close(first(x), again(x), rtol=0, atol=0)
    assert build_encoder("tiny-phikon-v2").weights_hash != first.weights_hash  # same arch, other family


def test_forward_under_bf16_autocast(tiles):
    encoder = build_encoder("tiny-virchow2")
    x = encoder.preprocess(tiles)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = encoder(x)
    assert out.dtype == torch.float32 and out.shape == (4, 64)
    torch.testing.assert_close(out, encoder(x), rtol=0.1, atol=0.1)


def test_bf16_weights_accept_float32_input(tiles):
    encoder = build_encoder("tiny-uni", dtype=torch.bfloat16)
    assert encoder(encoder.preprocess(tiles)).dtype == torch.float32


def test_card_dict_is_json_ready():
    import json

    data = json.loads(json.dumps(get_card("conch").to_dict()))
    assert data["pooler"] == {"dim": 512, "heads": 8, "queries": 1} and data["hub_id"] == "MahmoodLab/CONCH"
    assert data["mean"] == [0.48145466, 0.4578275, 0.40821073] and data["output"] == "attn-pool"


@pytest.mark.parametrize("name", [card.name for card in list_cards(tiny=True)])
def test_tiny_features_depend_on_the_tile(name):
    """A stand-in whose features ignore the pixels would make every downstream model constant."""
    encoder = build_encoder(name)
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 256, size=(8, 224, 224, 3), dtype=np.uint8)
    with torch.no_grad():
        features = encoder(encoder.preprocess(tiles)).numpy()
    assert features.std(axis=0).mean() > 1e-2 * np.abs(features).mean()
