"""What a training run needs at run time, with PyTorch and numpy alone.

    settings.py      TrainConfig and SETTINGS: every training setting, declared once
    losses.py        losses that respect the model's final activation
    optim.py         optimizers and learning-rate schedules
    loop.py          the epoch loop's pure pieces: seeding, tensors, one step, normalizer
                     fitting, evaluation, the best epoch and early stopping
    distributed.py   torchrun: process groups, shards, sums over processes
    weights.py       state dicts read and written (safetensors, or .pt read weights-only)
    data/            the datasets: built-ins, CSV, NPZ, IDX and image folders, and the split

Deepwire trains with these modules (engine.training orchestrates them: compile, callbacks,
control, checkpoints), and the python export copies them unchanged beside the exported
train.py as the package `deepwire_runtime`. The exported script trains the way the app does
because it runs the same code.

So the rule here: import only the standard library, numpy, torch and each other, relatively
(scikit-learn, Pillow and safetensors lazily, where a feature needs them), never the rest of
`engine`. tests/engine/test_structure.py holds it.
"""
