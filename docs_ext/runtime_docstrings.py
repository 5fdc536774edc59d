"""A griffe extension: the API reference shows the docstrings streamls completes on import.

Some docstrings hold a line ``{hyperparameters}`` that :mod:`streamls.hyperparameters`
replaces, on import, by an entry per hyperparameter of ``TrainConfig`` (so documented
defaults cannot drift), and :func:`streamls.fit` also gets those keywords in its signature.
Griffe reads the source, so for the objects whose source docstring holds that line this
extension takes the docstring, and a function's parameters, from the imported object.
"""

from __future__ import annotations

import inspect
from typing import Any

import griffe

from streamls.hyperparameters import MARKER


class RuntimeDocstrings(griffe.Extension):
    """Replace marked docstrings (and the parameters of marked functions) by the imported object's."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is None or MARKER not in obj.docstring.value:
            return
        runtime = griffe.dynamic_import(obj.path)
        obj.docstring.value = inspect.cleandoc(runtime.__doc__)
        if isinstance(obj, griffe.Function):
            obj.parameters = runtime_parameters(obj.parameters, inspect.signature(runtime))


def runtime_parameters(static: griffe.Parameters, signature: inspect.Signature) -> griffe.Parameters:
    """The parameters of ``signature``: those also in the source as griffe read them, the others made from it."""
    known = {parameter.name: parameter for parameter in static}
    return griffe.Parameters(
        *(
            known.get(name)
            or griffe.Parameter(
                name,
                annotation=parameter.annotation if isinstance(parameter.annotation, str) else None,
                kind=griffe.ParameterKind(parameter.kind.description),
                default=repr(parameter.default),
            )
            for name, parameter in signature.parameters.items()
        )
    )
