"""Starter models (resources/templates/*.json): the tutorials' networks users try first.

The JSON files are written by `python -m engine.templates` from the builders below, so a
template is declared once here and laid out automatically. Each names the built-in dataset it
trains on as it opens (the graph's `dataset`): its Input and Output fit that data.
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


def _transformer():
    return build("Transformer text classifier", [
        ("tokens", "Input", {"shape": [64], "dtype": "int64"}),
        ("embedding", "Embedding", {"num_embeddings": 1000, "embedding_dim": 64}),
        ("positions", "PositionalEmbedding", {"kind": "learned"}),
        ("encoder", "TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 128, "dropout": 0.1}),
        ("encoder_1", "TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 128, "dropout": 0.1}),
        ("mean_pool", "GlobalAvgPool", {"layout": "sequence"}),
        ("dense", "Linear", {"units": 2}),
        ("output", "Output", {}),
    ])


def _residual_cnn():
    layers = [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("stem", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("conv_a", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same", "activation": "relu"}),
        ("conv_b", "Conv2d", {"filters": 32, "kernel_size": 3, "padding": "same"}),
        ("residual", "Add", {}),
        ("relu", "Activation", {"function": "relu"}),
        ("pool", "MaxPool2d", {"kernel_size": 2}),
        ("global_pool", "GlobalAvgPool", {}),
        ("dense", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ]
    wires = [("image", "stem"), ("stem", "conv_a"), ("conv_a", "conv_b"), ("conv_b", "residual"),
             ("stem", "residual"), ("residual", "relu"), ("relu", "pool"), ("pool", "global_pool"),
             ("global_pool", "dense"), ("dense", "output")]
    return build("Residual CNN (digits)", layers, wires)


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


def _mobilenet():
    """An inverted-residual block with squeeze-and-excitation (MobileNetV2/V3's), then a downsampling one."""
    layers = [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("stem", "Conv2d", {"filters": 16, "kernel_size": 3, "padding": "same", "bias": False}),
        ("stem_bn", "BatchNorm", {}),
        ("stem_relu6", "Activation", {"function": "relu6"}),
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
    ]

    def chain(*names):
        return list(zip(names, names[1:]))

    wires = (chain("image", "rescaling", "stem", "stem_bn", "stem_relu6", "expand", "expand_bn", "expand_relu6",
                   "depthwise", "depthwise_bn", "depthwise_relu6", "se_pool", "se_reduce", "se_gate")
             + [("depthwise_relu6", "se_scale"), ("se_gate", "se_scale")]       # (64, 8, 8) x (64, 1, 1)
             + chain("se_scale", "project", "project_bn", "residual") + [("stem_relu6", "residual")]
             + chain("residual", "expand_2", "expand_2_bn", "expand_2_relu6", "depthwise_2", "depthwise_2_bn",
                     "depthwise_2_relu6", "project_2", "project_2_bn", "global_pool", "dropout", "classifier",
                     "output"))
    return build("MobileNetV2-style CNN (digits)", layers, wires)


def _vit():
    """ViT-tiny's shape: patches as tokens, a class token, learned positions, pre-norm encoder layers."""
    return build("ViT-tiny image transformer (digits)", [
        ("image", "Input", {"shape": [1, 8, 8]}),
        ("rescaling", "Rescaling", {"scale": 1 / 16}),
        ("patches", "Conv2d", {"filters": 32, "kernel_size": 2, "stride": 2}),
        ("tokens", "Reshape", {"shape": [32, 16]}),
        ("sequence", "Permute", {"dims": [1, 0]}),
        ("class_token", "ClassToken", {}),
        ("positions", "PositionalEmbedding", {"kind": "learned"}),
        ("encoder", "TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 64, "dropout": 0.1,
                                                "activation": "gelu", "norm_first": True}),
        ("encoder_1", "TransformerEncoderLayer", {"nhead": 4, "dim_feedforward": 64, "dropout": 0.1,
                                                  "activation": "gelu", "norm_first": True}),
        ("norm", "LayerNorm", {}),
        ("take_class_token", "Select", {"dim": 0, "index": 0}),
        ("head", "Linear", {"units": 10}),
        ("output", "Output", {}),
    ])


BUILDERS = {
    "fashion_mnist_mlp": (_mlp, "Keras' first tutorial: 28x28 images -> Flatten -> Dense 128 -> 10 classes",
                          "fashion_mnist"),
    "tabular_dnn": (_tabular, "20 tabular features -> 64 -> Dropout -> 32 -> 1 sigmoid (binary)", "tabular_binary"),
    "image_cnn": (_cnn, "3x128x128 images -> two conv/pool stages -> Dense 128 -> 10 softmax", "shapes"),
    "sequence_lstm": (_lstm, "(50, 8) sequences -> LSTM 64 (last step) -> 32 -> 1 (forecasting)", "sine_forecast"),
    "transformer_classifier": (_transformer,
                               "token ids -> Embedding + positions -> 2 encoder layers -> mean -> 2 classes",
                               "token_classification"),
    "residual_cnn": (_residual_cnn, "8x8 digit images -> conv stem + residual block (Add) -> 10 classes",
                     "digits_images"),
    "digits_mlp": (_digits_mlp, "Built-in 8x8 digits as 64 features -> Normalization -> 64 -> 10 classes", "digits"),
    "digits_cnn": (_digits_cnn, "Built-in 8x8 digit images -> two small convs -> 10 classes", "digits_images"),
    "mobilenet_cnn": (_mobilenet, "8x8 digit images -> inverted residual blocks (depthwise conv, "
                                  "squeeze-and-excitation, ReLU6) -> 10 classes", "digits_images"),
    "vit_tiny": (_vit, "8x8 digit images as 16 patch tokens -> class token + positions -> 2 encoder layers -> "
                       "the class token -> 10 classes", "digits_images"),
}


def layout(graph: Graph, dx: float = 280.0, dy: float = 140.0) -> None:
    """Move every node to where `graph.layered_layout` puts it (the designer's Arrange uses the same)."""
    for node_id, pos in layered_layout(graph, dx, dy).items():
        graph.move(node_id, pos)


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
