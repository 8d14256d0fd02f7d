"""Starter models (resources/templates/*.json): the tutorials' networks users try first.

The JSON files are written by `python -m engine.templates` from the builders below, so a
template is declared once here and laid out automatically. Each names the built-in dataset it
trains on as it opens (the graph's `dataset`): its Input and Output fit that data. A repeated block
is a module (issue #17): its definition built like a template (`build`), added with `_with`, used by
a Module instance whose `repeat` the description names (×2).
"""
from __future__ import annotations

import json
from pathlib import Path

from .fileio import atomic_write_text
from .graph import FormatError, Graph, build, layered_layout

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "resources" / "templates"
STARTER = "digits_mlp"


def _mlp():
    return build("Fashion-MNIST MLP", [
        ("input", "Input", {"shape": [28, 28]}),
        ("flatten", "Flatten", {}),
        ("dense", "Linear", {"units": 128, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])


def _tabular():
    return build("Tabular DNN", [
        ("input", "Input", {"shape": [20]}),
        ("dense", "Linear", {"units": 64, "activation": "relu"}),
        ("dropout", "Dropout", {"p": 0.2}),
        ("dense_1", "Linear", {"units": 32, "activation": "relu"}),
        ("dense_2", "Linear", {"units": 1, "activation": "sigmoid"}),
        ("output", "Output", {}),
    ])


def _cnn():
    return build("Image CNN", [
        ("input", "Input", {"shape": [3, 128, 128]}),
        ("rescaling", "Rescaling", {"scale": 1 / 255}),
        ("conv2d", "Conv2d", {"filters": 32, "kernel_size": 3, "activation": "relu"}),
        ("max_pool2d", "MaxPool2d", {"kernel_size": 2}),
        ("conv2d_1", "Conv2d", {"filters": 64, "kernel_size": 3, "activation": "relu"}),
        ("max_pool2d_1", "MaxPool2d", {"kernel_size": 2}),
        ("flatten", "Flatten", {}),
        ("dense", "Linear", {"units": 128, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 10, "activation": "softmax"}),
        ("output", "Output", {}),
    ])


def _lstm():
    return build("Sequence LSTM", [
        ("input", "Input", {"shape": [50, 8]}),
        ("lstm", "LSTM", {"hidden_size": 64}),
        ("dense", "Linear", {"units": 32, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 1}),
        ("output", "Output", {}),
    ])


def _with(graph: Graph, *modules: Graph) -> Graph:
    """`graph` with these module definitions (each named as its graph)."""
    for definition in modules:
        graph.add_module(definition.name, definition)
    return graph


def _chain(*names):
    return list(zip(names, names[1:]))


def _encoder_block(length: int, width: int, hidden: int, heads: int, activation: str, norm_first: bool) -> Graph:
    """A transformer encoder block of blocks: self-attention and an MLP, each added to what it reads, with a
    LayerNorm before each (pre-norm, ViT's) or after each sum (post-norm, the original Transformer's)."""
    layers = [
        ("x", "Input", {"shape": [length, width]}),
        ("attention", "MultiheadAttention", {"num_heads": heads, "dropout": 0.1}),
        ("attention_dropout", "Dropout", {"p": 0.1}),
        ("residual", "Add", {}),
        ("norm", "LayerNorm", {}),
        ("mlp", "Linear", {"units": hidden, "activation": activation}),
        ("mlp_dropout", "Dropout", {"p": 0.1}),
        ("mlp_out", "Linear", {"units": width}),
        ("mlp_out_dropout", "Dropout", {"p": 0.1}),
        ("residual_1", "Add", {}),
        ("norm_1", "LayerNorm", {}),
        ("y", "Output", {}),
    ]
    mlp = _chain("mlp", "mlp_dropout", "mlp_out", "mlp_out_dropout", "residual_1")
    if norm_first:   # x + attention(norm(x)), then h + mlp(norm_1(h))
        wires = (_chain("x", "norm", "attention", "attention_dropout", "residual") + [("x", "residual")]
                 + _chain("residual", "norm_1", "mlp") + mlp + [("residual", "residual_1"), ("residual_1", "y")])
    else:            # norm(x + attention(x)), then norm_1(h + mlp(h))
        wires = (_chain("x", "attention", "attention_dropout", "residual") + [("x", "residual")]
                 + _chain("residual", "norm", "mlp") + mlp + [("norm", "residual_1")]
                 + _chain("residual_1", "norm_1", "y"))
    return build("EncoderBlock", layers, wires)


def _transformer():
    """Two post-norm encoder blocks (nn.TransformerEncoderLayer's structure) as one module repeated twice."""
    graph = build("Transformer text classifier", [
        ("tokens", "Input", {"shape": [64], "dtype": "int64"}),
        ("embedding", "Embedding", {"num_embeddings": 1000, "embedding_dim": 64}),
        ("positions", "PositionalEmbedding", {"kind": "learned"}),
        ("encoder", "Module", {"module": "EncoderBlock", "repeat": 2}),
        ("mean_pool", "GlobalAvgPool", {"layout": "sequence"}),
        ("dense", "Linear", {"units": 2}),
        ("output", "Output", {}),
    ])
    return _with(graph, _encoder_block(64, 64, 128, 4, "relu", norm_first=False))


def _residual_block() -> Graph:
    """Two 3x3 convolutions added to what they read, then ReLU (ResNet's basic block)."""
    layers = [
        ("x", "Input", {"shape": [32, 8, 8]}),
        ("conv_a", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("conv_b", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same"}),
        ("residual", "Add", {}),
        ("relu", "Activation", {"function": "relu"}),
        ("y", "Output", {}),
    ]
    return build("ResidualBlock", layers, _chain("x", "conv_a", "conv_b", "residual", "relu", "y")
                 + [("x", "residual")])


def _residual_cnn():
    graph = build("Residual CNN (digits)", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("stem", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("residual_block", "Module", {"module": "ResidualBlock"}),
        ("pool", "MaxPool2d", {"kernel_size": 2}),
        ("global_pool", "GlobalAvgPool", {}),
        ("dense", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])
    return _with(graph, _residual_block())


def _digits_mlp():
    return build("Digits MLP", [
        ("input", "Input", {"shape": [64]}),
        ("normalization", "Normalization", {}),
        ("dense", "Linear", {"units": 64, "activation": "relu"}),
        ("dense_1", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])


def _digits_cnn():
    return build("Digits CNN", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("conv2d", "Conv2d", {"filters": 16, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("max_pool2d", "MaxPool2d", {"kernel_size": 2}),
        ("conv2d_1", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("flatten", "Flatten", {}),
        ("dropout", "Dropout", {"p": 0.25}),
        ("dense", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])


def _inverted_residual() -> Graph:
    """MobileNetV2/V3's inverted residual block: expand 1x1, depthwise 3x3, squeeze-and-excitation, project
    1x1, added to what it reads."""
    layers = [
        ("x", "Input", {"shape": [16, 8, 8]}),
        ("expand", "Conv2d", {"filters": 64, "kernel_size": 1, "bias": False}),
        ("expand_bn", "BatchNorm", {}),
        ("expand_relu6", "Activation", {"function": "relu6"}),
        ("depthwise", "DepthwiseConv2d", {"kernel_size": 3, "padding": "same", "bias": False}),
        ("depthwise_bn", "BatchNorm", {}),
        ("depthwise_relu6", "Activation", {"function": "relu6"}),
        ("se_pool", "AdaptiveAvgPool2d", {"output_size": 1}),
        ("se_reduce", "Conv2d", {"filters": 16, "kernel_size": 1, "activation": "relu"}),
        ("se_gate", "Conv2d", {"filters": 64, "kernel_size": 1, "activation": "hardsigmoid"}),
        ("se_scale", "Multiply", {}),
        ("project", "Conv2d", {"filters": 16, "kernel_size": 1, "bias": False}),
        ("project_bn", "BatchNorm", {}),
        ("residual", "Add", {}),
        ("y", "Output", {}),
    ]
    wires = (_chain("x", "expand", "expand_bn", "expand_relu6", "depthwise", "depthwise_bn", "depthwise_relu6",
                    "se_pool", "se_reduce", "se_gate")
             + [("depthwise_relu6", "se_scale"), ("se_gate", "se_scale")]       # (64, 8, 8) x (64, 1, 1)
             + _chain("se_scale", "project", "project_bn", "residual") + [("x", "residual"), ("residual", "y")])
    return build("InvertedResidual", layers, wires)


def _mobilenet():
    """Two inverted-residual blocks with squeeze-and-excitation (one module, repeated), then a downsampling one."""
    graph = build("MobileNetV2-style CNN (digits)", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("stem", "Conv2d", {"filters": 16, "kernel_size": 3, "padding": "same", "bias": False}),
        ("stem_bn", "BatchNorm", {}),
        ("stem_relu6", "Activation", {"function": "relu6"}),
        ("blocks", "Module", {"module": "InvertedResidual", "repeat": 2}),
        ("expand_2", "Conv2d", {"filters": 96, "kernel_size": 1, "bias": False}),
        ("expand_2_bn", "BatchNorm", {}),
        ("expand_2_relu6", "Activation", {"function": "relu6"}),
        ("depthwise_2", "DepthwiseConv2d", {"kernel_size": 3, "stride": 2, "padding": 1, "bias": False}),
        ("depthwise_2_bn", "BatchNorm", {}),
        ("depthwise_2_relu6", "Activation", {"function": "relu6"}),
        ("project_2", "Conv2d", {"filters": 32, "kernel_size": 1, "bias": False}),
        ("project_2_bn", "BatchNorm", {}),
        ("global_pool", "GlobalAvgPool", {}),
        ("dropout", "Dropout", {"p": 0.2}),
        ("classifier", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])
    return _with(graph, _inverted_residual())


def _vit():
    """ViT-tiny's shape: patches as tokens, a class token, learned positions, pre-norm encoder blocks (a module
    of attention and MLP blocks, repeated twice)."""
    graph = build("ViT-tiny image transformer (digits)", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("patches", "Conv2d", {"filters": 32, "kernel_size": 2, "stride": 2}),
        ("tokens", "Reshape", {"shape": [32, 16]}),
        ("sequence", "Permute", {"dims": [1, 0]}),
        ("class_token", "ClassToken", {}),
        ("positions", "PositionalEmbedding", {"kind": "learned"}),
        ("encoder", "Module", {"module": "EncoderBlock", "repeat": 2}),
        ("norm", "LayerNorm", {}),
        ("take_class_token", "Select", {"dim": 0, "index": 0}),
        ("head", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])
    return _with(graph, _encoder_block(17, 32, 64, 4, "gelu", norm_first=True))


BUILDERS = {
    "fashion_mnist_mlp": (_mlp, "Keras' first tutorial: 28x28 images -> Flatten -> Dense 128 -> 10 classes",
                          "fashion_mnist"),
    "tabular_dnn": (_tabular, "20 tabular features -> 64 -> Dropout -> 32 -> 1 sigmoid (binary)", "tabular_binary"),
    "image_cnn": (_cnn, "3x128x128 images -> two conv/pool stages -> Dense 128 -> 10 softmax", "shapes"),
    "sequence_lstm": (_lstm, "(50, 8) sequences -> LSTM 64 (last step) -> 32 -> 1 (forecasting)", "sine_forecast"),
    "transformer_classifier": (_transformer,
                               "token ids -> Embedding + positions -> encoder block ×2 (attention + MLP) -> mean -> "
                               "2 classes",
                               "token_classification"),
    "residual_cnn": (_residual_cnn, "8x8 digit images -> conv stem + residual block (a module: two convs + Add) "
                                    "-> 10 classes", "digits_images"),
    "digits_mlp": (_digits_mlp, "Built-in 8x8 digits as 64 features -> Normalization -> 64 -> 10 classes", "digits"),
    "digits_cnn": (_digits_cnn, "Built-in 8x8 digit images -> two small convs -> 10 classes", "digits_images"),
    "mobilenet_cnn": (_mobilenet, "8x8 digit images -> inverted residual block ×2 (depthwise conv, "
                                  "squeeze-and-excitation, ReLU6) -> a downsampling one -> 10 classes",
                      "digits_images"),
    "vit_tiny": (_vit, "8x8 digit images as 16 patch tokens -> class token + positions -> encoder block ×2 "
                       "(pre-norm attention + MLP) -> the class token -> 10 classes", "digits_images"),
}


def layout(graph: Graph, dx: float = 280.0, dy: float = 140.0) -> None:
    """Move every node to where `graph.layered_layout` puts it (the designer's Arrange uses the same);
    the graph's module definitions each laid out too."""
    for node_id, pos in layered_layout(graph, dx, dy).items():
        graph.move(node_id, pos)
    for definition in graph.modules.values():
        layout(definition, dx, dy)


def template_names() -> list[str]:
    return sorted(p.stem for p in TEMPLATE_DIR.glob("*.json"))


def describe(name: str) -> dict:
    data = _read(name)
    return {"name": name, "title": data.get("name", name), "description": data.get("description", ""),
            "dataset": data.get("dataset", "")}


def load_template(name: str) -> Graph:
    """The template's graph; its `dataset` names the built-in dataset it trains on."""
    return Graph.from_dict(_read(name))


def _read(name: str) -> dict:
    if name not in template_names():
        raise FormatError(f"no template named {name!r}; choose one of: {', '.join(template_names())}")
    return json.loads((TEMPLATE_DIR / f"{name}.json").read_text(encoding="utf-8"))


def write_templates() -> None:
    TEMPLATE_DIR.mkdir(parents=True, exist_ok=True)
    for name, (builder, description, dataset) in BUILDERS.items():
        graph = builder()
        graph.dataset = dataset
        layout(graph)
        data = graph.to_dict()
        data["description"] = description
        atomic_write_text(TEMPLATE_DIR / f"{name}.json", json.dumps(data, indent=2) + "\n")


if __name__ == "__main__":
    write_templates()
    print(f"wrote {len(BUILDERS)} templates to {TEMPLATE_DIR}")
