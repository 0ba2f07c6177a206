"""The Classify tab's inputs take a value of the wrong type (a number, a list) as it came, for
the handler to refuse in one line, instead of failing gradio's data-model check with pydantic's
multi-line message (the check runs even for events with preprocess=False)."""

from __future__ import annotations

import functools
from typing import Any, TypeVar

import gradio as gr
from gradio.data_classes import GradioModel
from pydantic import ConfigDict, ValidationError, model_validator

Input = TypeVar("Input", bound=gr.components.Component)


@functools.cache
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


def lenient(component: Input) -> Input:
    """`component`, with a data model that passes a wrong-typed value to the handler."""
    component.data_model = _lenient(type(component).data_model)  # type: ignore[attr-defined]
    return component
