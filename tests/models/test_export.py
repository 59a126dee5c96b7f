"""ONNX export: the first network of a shape goes through torch's exporter; later ones reuse its graph.

The reused graph with a new network's weights must be exactly what the exporter makes of that network.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from autoretrain.models import export
from autoretrain.models.lstm import DirectionLSTM
from autoretrain.models.runtime import make_session


def initializers(model: bytes) -> dict[str, np.ndarray]:
    return {tensor.name: numpy_helper.to_array(tensor) for tensor in onnx.load_from_string(model).graph.initializer}


@pytest.mark.parametrize("layers", [1, 2])
def test_a_reused_graph_holds_exactly_the_weights_the_exporter_would_write(layers: int,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_TEMPLATES", {})
    torch.manual_seed(0)
    first = DirectionLSTM(28, 8, layers)
    torch.manual_seed(1)
    second = DirectionLSTM(28, 8, layers)
    direct = export._export_graph(second, 6, 28)
    export.export_onnx(first, 6, 28)  # makes the template
    reused = export.export_onnx(second, 6, 28)
    expected, actual = initializers(direct), initializers(reused)
    assert expected.keys() == actual.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name])
    x = np.random.default_rng(2).normal(size=(5, 6, 28)).astype(np.float32)
    probability = make_session(reused).run(None, {"x": x})[0]
    np.testing.assert_allclose(probability, export.torch_probabilities(second, x), atol=1e-5)


def test_a_template_of_another_shape_is_never_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export, "_TEMPLATES", {})
    export.export_onnx(DirectionLSTM(28, 8), 6, 28)
    export.export_onnx(DirectionLSTM(28, 12), 6, 28)
    export.export_onnx(DirectionLSTM(28, 8), 10, 28)
    assert sorted(export._TEMPLATES) == [(6, 28, 8, 1), (6, 28, 12, 1), (10, 28, 8, 1)]
