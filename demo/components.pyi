"""The Classify tab's input components: gradio's Image and Sketchpad, except that a value of
the wrong type (a number, a list) reaches the handler as it came, to be refused there in one
line, instead of failing gradio's data-model check with pydantic's multi-line message."""

from __future__ import annotations

from typing import Any

import gradio as gr
from gradio.components.image_editor import EditorData
from gradio.data_classes import GradioModel, ImageData
from pydantic import ConfigDict, ValidationError, model_validator

def _lenient(model: type[GradioModel]) -> type[GradioModel]:
    """`model`, validating as before, but passing a value it refuses through unchanged."""

    class Lenient(model):  # type: ignore[misc, valid-type]
        model_config = ConfigDict(title=model.__name__)

        @model_validator(mode="wrap")
        @classmethod
        def _as_given(cls, value: Any, handler: Any) -> Any:
            try:
                return handler(value)
            except ValidationError:
                return value

    return Lenient

from gradio.events import Dependency

class ImageInput(gr.Image):
    """gr.Image whose wrong-typed values reach the handler (events with preprocess=False)."""

    data_model = _lenient(ImageData)

    def get_block_name(self) -> str:
        return "image"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component

class SketchInput(gr.Sketchpad):
    """gr.Sketchpad whose wrong-typed values reach the handler (events with preprocess=False)."""

    data_model = _lenient(EditorData)

    def get_block_name(self) -> str:
        return "imageeditor"
    from typing import Callable, Literal, Sequence, Any, TYPE_CHECKING
    from gradio.blocks import Block
    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component
