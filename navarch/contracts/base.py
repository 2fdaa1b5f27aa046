"""The two kinds of model that cross a Temporal boundary.

Stored models (what workflows keep, return and receive from each other) are lenient: unknown
fields are ignored and every new field has a default, so histories written by older versions
keep decoding. Signal models (what people send) are strict: a payload with unknown keys is
rejected, never half-applied.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, ModelWrapValidatorHandler, model_validator

from navarch.validation import lenient_decoding


class StoredModel(BaseModel):
    """Lenient base for what workflows store and return: old fields never break decoding."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="wrap")
    @classmethod
    def _decode_leniently(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """Config sections a stored model embeds (strict, for what people write) drop the
        keys they no longer know, too."""
        with lenient_decoding():
            return handler(data)


class SignalModel(BaseModel):
    """Strict base for what people send: a payload with unknown keys is rejected (logged
    and dropped by the SDK), never half-applied."""

    model_config = ConfigDict(extra="forbid")
