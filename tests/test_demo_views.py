"""The demo's teaching views without a server: model cards' warnings, the chain rule of the
Backprop tab, the drawn autograd graph and the gradient pictures of the Inspect tab."""

from __future__ import annotations

import pytest
import torch

from zoo.demo import backprop, cards, graphview, inspector, results
from zoo.trust.introspect import autograd_nodes


def meta(accuracy: float, train_images: int, classes: int = 10) -> dict:
    return {
        "classes": [str(i) for i in range(classes)],
        "metrics": {"test_accuracy": accuracy, "train_images": train_images},
    }


def test_weak_models_are_named():
    assert cards.weakness(meta(0.97, 1438)) is None
    assert cards.weakness(meta(0.19, 1438)) == (
        "test accuracy 19.0% is near chance (10.0% for 10 classes)"
    )
    assert cards.weakness(meta(0.9, 20)) == "trained on only 20 images (2 a class)"
    assert cards.weakness(meta(0.6, 50_000, classes=1000)) is None  # 600x chance


@pytest.mark.parametrize(("values", "products"), [((2, 100, 1.1), (110, 2.2, 200, 1.1))])
def test_chain_rule_paths_multiply_to_autograd(values, products):
    result = backprop.oranges(*values)
    paths = {path.node: path for path in backprop.chain_paths(result)}
    assert [v for _, v in paths["quantity"].factors] == pytest.approx([1, 1.1, 100])
    assert [name for name, _ in paths["tax"].factors] == ["d total / d total", "d total / d tax"]
    for node, expected in zip(("quantity", "price", "tax", "cost"), products, strict=True):
        assert paths[node].product == pytest.approx(expected)
        assert result.grads[node] == pytest.approx(expected)


def test_chain_rule_uses_the_users_values():
    result = backprop.oranges(3, 7, 2)
    assert "= 1 x 2 x 7 = <b>14</b>" in backprop.chain_html(result)
    assert result.grads["quantity"] == 14


def test_graph_layers_put_parameters_above_their_operation():
    w = torch.randn(3, 2, requires_grad=True)
    b = torch.randn(3, requires_grad=True)
    loss = (torch.randn(4, 2) @ w.t() + b).relu().sum()
    nodes = autograd_nodes(loss, {id(w): "w", id(b): "b"})
    assert next(iter(nodes.labels.values())) == "SumBackward0"
    rows = graphview.layers(nodes)
    labels = [[nodes.labels[n] for n in row] for row in rows]
    assert labels[0] == ["SumBackward0"] and labels[1] == ["ReluBackward0"]
    assert "b 3" in labels[3] and labels[-1] == ["w 3x2"]
    drawn = graphview.svg(nodes, "a caption")
    assert drawn.count("<rect") == len(nodes.labels) and drawn.count("<line") == len(nodes.edges)


def test_graph_is_cut_at_max_nodes():
    x = torch.randn(2, requires_grad=True)
    y = x
    for _ in range(50):
        y = y * 2
    nodes = autograd_nodes(y.sum(), max_nodes=10)
    assert len(nodes.labels) == 10 and nodes.truncated
    assert "(cut: the first nodes only)" in graphview.svg(nodes)


def test_gradient_pictures(registry):
    inspecting = inspector.Inspector(registry, set, max_parameters=200_000_000)
    conv = inspecting.gradients("lenet", "conv2.weight")
    assert conv.before.size != conv.after.size or conv.before.tobytes() != conv.after.tobytes()
    assert "every one of its 2,400 values was 0" in conv.summary
    bias = inspecting.gradients("lenet", "fc3.bias")
    assert bias.after.size == (495, 288)
    with pytest.raises(Exception, match="lenet has no parameter 'fc9.bias'"):
        inspecting.gradients("lenet", "fc9.bias")


def test_an_answer_names_its_model_and_file_with_one_decimal():
    top = {"3": 0.9953, "8": 0.0041, "5": 0.0004, "1": 0.00002, "0": 0.0}
    shown = results.answer_html("lenet-digits.safetensors", "lenet on digits", top, False)
    assert "lenet on digits <code>lenet-digits.safetensors</code>" in shown
    assert 'data-label="3"' in shown and "99.5% calibrated confidence" in shown
    values = [v.split("<")[0] for v in shown.split('class="top-value">')[1:]]
    assert values == ["99.5%", "0.4%", "&lt;0.1%", "&lt;0.1%", "0.0%"]  # not four rows of "0%"
    unknown = results.answer_html("lenet-digits.safetensors", "lenet on digits", top, True)
    assert "<b>Unknown</b>: this does not look like the images lenet on digits" in unknown
    assert "not to be trusted: 3 (99.5%)" in unknown


def test_what_suits_the_model():
    digits = {"dataset": "digits", "input": {"channels": 1}, "classes": list("0123456789")}
    garments = {
        "dataset": "fashion-mnist",
        "input": {"channels": 1},
        "classes": ["T-shirt/top", "Trouser"],
        "unknown": {"background": "dark"},
    }
    colour = {"dataset": "imagenet", "input": {"channels": 3}, "classes": ["tench"]}
    assert results.drawing_label(digits) == (
        "Draw a digit (0, 1, 2, 3, 4, 5, 6, 7, 8, 9): it is classified as you draw"
    )
    assert results.drawing_label(garments).startswith("Draw a garment (T-shirt/top, Trouser)")
    assert results.drawing_label(colour) is None and results.drawing_label(None) is None
    light = {**digits, "unknown": {"background": "light"}}  # dark ink on white: no drawing
    assert results.drawing_label(light) is None
    assert not results.takes_photos(digits) and not results.takes_photos(garments)
    assert results.takes_photos(colour)
