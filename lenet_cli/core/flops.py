"""Count the floating-point work of the network from its layers, for efficiency figures."""

from __future__ import annotations


def forward_flops_per_image(model) -> int:
    """Multiply-adds x 2 of every conv and dense layer for one image (pooling, LRN, ReLU ignored: <2 %)."""
    total = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Conv2D":
            _, h, w, out_channels = layer.output.shape
            kh, kw, in_channels, _ = layer.kernel.shape
            total += 2 * h * w * out_channels * kh * kw * in_channels
        elif kind == "Dense":
            fan_in, units = layer.kernel.shape
            total += 2 * fan_in * units
    return int(total)


def training_flops_per_image(model) -> int:
    """Forward plus backward (gradients for inputs and weights): about three forward passes."""
    return 3 * forward_flops_per_image(model)
