"""Make the small PyTorch-exported CNNs that tests/graph/test_train_torch.py trains.

Not run by the tests (torch is not a project dependency). To regenerate, in a throwaway venv:

    python3 -m venv /tmp/torchenv
    /tmp/torchenv/bin/pip install torch==2.13.0 onnx onnxscript
    /tmp/torchenv/bin/python tests/graph/data/make_torch_exports.py

It writes tiny_cnn_{dynamo,torchscript}_{eval,train}.onnx at batch 2: the same small CNN
(conv, batch norm, relu, maxpool, a residual add, a concat, ReLU6, a squeeze-excitation
gate with hardsigmoid/hardswish, adaptive average pooling, flatten, dropout, linear) exported
by both exporters, in eval and in training mode, weights seeded.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from torch import nn

HERE = Path(__file__).resolve().parent


class TinyCNN(nn.Module):
    def __init__(self, classes: int = 5) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.branch = nn.Sequential(
            nn.Conv2d(8, 8, 3, padding=1, bias=False),
            nn.BatchNorm2d(8),
            nn.ReLU6(),
        )
        self.side = nn.Conv2d(8, 4, 1)
        self.se_reduce = nn.Conv2d(12, 4, 1)
        self.se_expand = nn.Conv2d(4, 12, 1)
        self.act = nn.Hardswish()
        self.gate = nn.Hardsigmoid()
        self.pool = nn.AvgPool2d(2)
        self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.2), nn.Linear(12 * 4, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = x + self.branch(x)  # residual add
        x = torch.cat([x, self.side(x)], dim=1)  # concat
        s = nn.functional.adaptive_avg_pool2d(x, 1)
        x = x * self.gate(self.se_expand(self.act(self.se_reduce(s))))
        x = self.pool(x)
        x = nn.functional.adaptive_avg_pool2d(x, 2)
        return self.head(x)


def main() -> None:
    torch.manual_seed(0)
    model = TinyCNN()
    with torch.no_grad():  # non-trivial running statistics
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.9, 1.1)
    x = torch.randn(2, 3, 16, 16)
    warnings.filterwarnings("ignore")
    for mode in ("eval", "train"):
        model.train(mode == "train")
        training = (
            torch.onnx.TrainingMode.TRAINING if mode == "train" else torch.onnx.TrainingMode.EVAL
        )
        path = HERE / f"tiny_cnn_torchscript_{mode}.onnx"
        torch.onnx.export(
            model,
            (x,),
            str(path),
            dynamo=False,
            opset_version=17,
            training=training,
            do_constant_folding=mode == "eval",
            input_names=["image"],
            output_names=["logits"],
            dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
        )
        path = HERE / f"tiny_cnn_dynamo_{mode}.onnx"
        program = torch.onnx.export(
            model,
            (x,),
            dynamo=True,
            opset_version=18,
            input_names=["image"],
            output_names=["logits"],
        )
        assert program is not None
        program.save(str(path))
        print(path.name, path.stat().st_size)


if __name__ == "__main__":
    main()
