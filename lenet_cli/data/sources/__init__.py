"""Every dataset lenet reads besides MNIST and Fashion-MNIST, one module each, behind :func:`lenet_cli.data.loader.load_dataset`.

* :mod:`~lenet_cli.data.sources.named`: KMNIST, QMNIST and the EMNIST splits, by name.
* :mod:`~lenet_cli.data.sources.idx_folder`: a folder of the four MNIST-layout IDX files (+ ``classes.txt``).
* :mod:`~lenet_cli.data.sources.picture_folder`: a folder of pictures, one sub-folder per class.
* :mod:`~lenet_cli.data.sources.csv_pixels`: a CSV of pixels (Kaggle's Digit Recognizer layout).

Each returns the same :class:`lenet_cli.data.dataset.Dataset`, with its class names.
"""
