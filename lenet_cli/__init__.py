"""lenet: train, evaluate, explain and ship LeNet-style networks on MNIST and Fashion-MNIST.

The package root stays import-light on purpose: importing it must never pull in
TensorFlow, so that ``lenet --help`` and argument errors answer instantly.
"""

__version__ = "0.1.0"
