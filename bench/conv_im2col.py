"""Would lenet's convolutions train faster as matmuls? TensorFlow's oneDNN convolution against im2col + matmul.

    python -m bench.conv_im2col                # batch 256
    python -m bench.conv_im2col --batch-size 512

For each of the network's two convolutions (conv_1: 28x28x1 -> 24x24x20 with
5x5 kernels; conv_2: 12x12x20 -> 10x10x50 with 3x3 kernels) it times one
forward pass with ReLU and the gradients training needs, in milliseconds
(median of 7 timings of 20 calls):

- ``native``: ``tf.nn.conv2d`` (oneDNN with lenet's settings);
- ``slices``: patches as a concatenation of K*K shifted slices, one matmul;
- ``patches``: patches from ``tf.image.extract_patches``, one matmul
  (conv_1 only: its input needs no gradient, so the patches are a constant).

conv_1's input gradient is not needed (the network's input does not train),
so conv_1 is timed with the kernel and bias gradients only; conv_2 also with
its input gradient, which conv_1 needs. The largest relative difference from
the native gradients is printed, to show the variants compute the same thing.
"""

from __future__ import annotations

import argparse
import time


def _median_ms(function, *args, repeats: int = 20) -> float:
    import tensorflow as tf

    function(*args)
    timings = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(repeats):
            result = function(*args)
        [tensor.numpy() for tensor in tf.nest.flatten(result)]
        timings.append((time.perf_counter() - started) / repeats * 1000)
    return sorted(timings)[3]


def compare(
    batch: int, height: int, channels: int, kernel: int, filters: int, input_gradient: bool
) -> dict[str, float]:
    import tensorflow as tf

    x = tf.random.uniform((batch, height, height, channels))
    w = tf.Variable(tf.random.normal((kernel, kernel, channels, filters)) * 0.1)
    b = tf.Variable(tf.zeros(filters))
    out = height - kernel + 1
    upstream = tf.random.normal((batch, out, out, filters))

    def trained(forward):
        @tf.function
        def run(x, upstream):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = tf.nn.relu(forward(x) + b)
                objective = tf.reduce_sum(y * upstream)
            return tape.gradient(objective, ([x] if input_gradient else []) + [w, b])

        return run

    def slices(x):
        patches = tf.concat([x[:, i : i + out, j : j + out, :] for i in range(kernel) for j in range(kernel)], axis=-1)
        return tf.reshape(
            tf.reshape(patches, (-1, kernel * kernel * channels)) @ tf.reshape(w, (-1, filters)),
            (batch, out, out, filters),
        )

    def extracted(x):
        patches = tf.image.extract_patches(x, [1, kernel, kernel, 1], [1, 1, 1, 1], [1, 1, 1, 1], "VALID")
        return tf.reshape(
            tf.reshape(patches, (-1, kernel * kernel)) @ tf.reshape(w, (-1, filters)), (batch, out, out, filters)
        )

    variants = {"native": trained(lambda x: tf.nn.conv2d(x, w, 1, "VALID")), "slices": trained(slices)}
    if channels == 1 and not input_gradient:
        variants["patches"] = trained(extracted)
    reference = variants["native"](x, upstream)
    result = {}
    for name, run in variants.items():
        got = run(x, upstream)
        result[f"{name}_max_relative_difference"] = max(
            float(tf.reduce_max(tf.abs(a - r)) / tf.reduce_max(tf.abs(r))) for a, r in zip(got, reference)
        )
        result[f"{name}_ms"] = _median_ms(run, x, upstream)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=256)
    args = parser.parse_args(argv)
    from bench.common import cpu_model
    from lenet_cli.core import config as C
    from lenet_cli.core.tensorflow_env import import_tensorflow

    import_tensorflow()
    layers = {
        "conv_1": (C.IMAGE_SIZE, 1, C.CONV_1_KERNEL, C.CONV_1_FILTERS, False),
        "conv_2": (
            (C.IMAGE_SIZE - C.CONV_1_KERNEL + 1) // C.POOL_SIZE,
            C.CONV_1_FILTERS,
            C.CONV_2_KERNEL,
            C.CONV_2_FILTERS,
            True,
        ),
    }
    print(f"CPU: {cpu_model()}; batch {args.batch_size}; ms per forward + training gradients (median)\n")
    print("| layer | variant | ms | max relative difference from native |\n|---|---|---|---|")
    for name, shape in layers.items():
        result = compare(args.batch_size, *shape)
        for variant in ("native", "slices", "patches"):
            if f"{variant}_ms" in result:
                print(
                    f"| {name} | {variant} | {result[f'{variant}_ms']:.1f} | {result[f'{variant}_max_relative_difference']:.1e} |"
                )


if __name__ == "__main__":
    main()
