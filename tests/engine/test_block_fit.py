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


def test_quick_fixes_are_declared_by_flatten_reshape_and_linear():
    from engine.blocks import fix_candidates

    flat = dict(fix_candidates(TensorSpec((784,))))
    assert flat == {"Linear": {"units": 784}, "Flatten": {}, "Reshape": {"shape": [1, 28, 28]}}
    image = fix_candidates(TensorSpec((3, 5, 5)), wanted=10)
    assert image == [("Linear", {"units": 10}), ("Flatten", {})]  # 75 values make no square image
    assert {t for t, _ in fix_candidates(TensorSpec((16,)))} == {"Linear", "Flatten", "Reshape"}


def test_wire_fixes_try_each_candidate_in_a_copy_and_say_which_fit():
    """A conv's image wired into a Linear: the candidates are tried in copies, each labelled with the
    shapes it would give; the graph itself is left as it was."""
    from engine.analysis import analyse, wire_fixes
    from engine.graph import build

    graph = build("g", [("x", "Input", {"shape": [1, 8, 8]}), ("conv", "Conv2d", {"filters": 4, "kernel_size": 3}),
                        ("head", "Linear", {"units": 10}), ("y", "Output", {})])
    ids = {graph.node(n).name: n for n in graph.node_ids()}
    before = graph.to_json()
    analysis = analyse(graph)
    fixes = {f.type_name: f for f in wire_fixes(graph, analysis, ids["conv"], ids["head"], 0)}
    assert "Flatten" in fixes and fixes["Flatten"].fits
    assert fixes["Flatten"].label.startswith("Insert Flatten: (4, 6, 6) → (144,)")
    assert graph.to_json() == before
