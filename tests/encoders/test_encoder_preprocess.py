"""Preprocessing: resize to the card's input size, scale, normalise; bad input is rejected."""

import numpy as np
import pytest
import torch

from raypath.encoders import build_encoder, get_card


def test_uniform_tile_normalises_to_the_card_constants():
    encoder = build_encoder("tiny-h-optimus-0")
    card = encoder.card
    tiles = np.full((2, 70, 70, 3), 128, dtype=np.uint8)
    x = encoder.preprocess(tiles)
    assert x.shape == (2, 3, card.input_size, card.input_size) and x.dtype == torch.float32
    expected = (128 / 255 - torch.tensor(card.mean)) / torch.tensor(card.std)
    torch.testing.assert_close(x[0, :, 10, 10], expected.float(), rtol=1e-5, atol=1e-5)


def test_tiles_already_at_input_size_are_not_resampled():
    encoder = build_encoder("tiny-uni")
    size = encoder.card.input_size
    tiles = np.random.default_rng(1).integers(0, 256, (1, size, size, 3), dtype=np.uint8)
    x = encoder.preprocess(tiles)
    mean, std = torch.tensor(encoder.card.mean), torch.tensor(encoder.card.std)
    expected = (torch.from_numpy(tiles[0]).float() / 255 - mean) / std
    torch.testing.assert_close(x[0].permute(1, 2, 0), expected)


def test_crop_fraction_centre_crops_after_resizing():
    """Prov-GigaPath: resize to 256/224 of the input, then centre-crop (tiny: 73 → 64)."""
    encoder = build_encoder("tiny-prov-gigapath")
    assert get_card("prov-gigapath").crop_fraction == pytest.approx(224 / 256)
    tiles = np.zeros((1, 128, 128, 3), dtype=np.uint8)
    tiles[:, :8] = 255  # a bright band at the top is cut away by the centre crop
    x = encoder.preprocess(tiles)
    assert x.shape[-1] == encoder.card.input_size == 64
    top_value = (1.0 - encoder.card.mean[0]) / encoder.card.std[0]
    assert x[0, 0, 0].max() < top_value - 0.5


@pytest.mark.parametrize("bad", [np.zeros((4, 4, 3), np.uint8), np.zeros((1, 4, 4, 3), np.float32),
                                 np.zeros((1, 4, 4, 4), np.uint8)])
def test_bad_tiles_are_rejected(bad):
    with pytest.raises(ValueError, match="uint8 tiles"):
        build_encoder("tiny-uni").preprocess(bad)
