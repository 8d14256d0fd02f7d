"""Which blocks fit after a tensor: decided by the engine from the blocks' shape rules, no Qt."""
from engine.blocks import REGISTRY, TOKENS, TensorSpec, blocks_feeding, blocks_taking


def test_an_image_fits_image_blocks_and_not_sequence_ones():
    fits = blocks_taking(TensorSpec((3, 28, 28)))
    assert {"Conv2d", "MaxPool2d", "Flatten", "Output", "BatchNorm", "RandomFlip"} <= set(fits)
    assert not {"Input", "Conv1d", "LSTM", "Embedding", "MultiheadAttention"} & set(fits)


def test_features_fit_linear_but_not_convolutions():
    fits = blocks_taking(TensorSpec((20,)))
    assert "Linear" in fits and "Dropout" in fits
    assert "Conv2d" not in fits and "GRU" not in fits


def test_token_ids_fit_only_blocks_that_accept_them():
    fits = blocks_taking(TensorSpec((64,), TOKENS))
    assert "Embedding" in fits and "Output" in fits
    assert all(REGISTRY[t].accepts_tokens for t in fits)
    assert "Linear" not in fits


def test_an_unknown_tensor_fits_every_block_with_an_input():
    assert blocks_taking(None) == [t for t in REGISTRY if t != "Input"]


def test_anything_but_an_output_can_feed_an_input_port():
    assert blocks_feeding() == [t for t in REGISTRY if t != "Output"]
    assert "Input" in blocks_feeding()
