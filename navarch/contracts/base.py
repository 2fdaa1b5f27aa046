"""The kinds of model that cross a Temporal boundary, and how what people send is decoded.

Stored models (what workflows keep, return and receive from each other) are lenient: unknown
fields are ignored and every new field has a default, so histories written by older versions
keep decoding. Signal models (what people send) are strict: a payload with unknown keys,
a non-finite number or a wrong type is invalid, never half-applied.

Signal and update handlers take their payloads raw (`*payloads`: whatever the SDK decoded,
which may be bytes, several arguments or plain JSON) and decode them with `decode_payload`,
so no payload can fail a workflow task: it is valid, or it is refused with a reason.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from temporalio.exceptions import ApplicationError

from navarch.validation import lenient_decoding, shorten, suggest

# Validation context for a model that a person wrote (a pool started from the `temporal`
# CLI): stored models then refuse unknown keys, as the config loader does.
FORBID_UNKNOWN = {"forbid_unknown_keys": True}


class StoredModel(BaseModel):
    """Lenient base for what workflows store and return: old fields never break decoding."""

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="wrap")
    @classmethod
    def _decode_leniently(cls, data: Any, handler: ModelWrapValidatorHandler[Any],
                          info: ValidationInfo) -> Any:
        """Config sections a stored model embeds (strict, for what people write) drop the
        keys they no longer know, too; unless a person's input is being checked."""
        if info.context and info.context.get("forbid_unknown_keys"):
            if isinstance(data, dict):
                known = _known_keys(cls)
                unknown = sorted(str(k) for k in data if k not in known)
                if unknown:
                    hint = suggest(unknown[0], known)
                    raise ValueError(f"unknown key(s) {', '.join(map(repr, unknown))}"
                                     + (f"; did you mean {hint!r}?" if hint else ""))
            return handler(data)
        with lenient_decoding():
            return handler(data)


def _known_keys(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields) | {f.alias for f in model.model_fields.values() if f.alias}


class SignalModel(BaseModel):
    """Strict base for what people send: unknown keys, infinities and NaNs are invalid."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class InvalidPayload(ValueError):
    """A signal's or update's payload that does not validate; the text says why."""


def invalid_request(update: str, problem: InvalidPayload) -> ApplicationError:
    """What an update's validator raises for a payload that does not decode."""
    return ApplicationError(f"invalid {update} request: {problem}", type="InvalidRequest",
                            non_retryable=True)


def refused(update: str, why: str) -> ApplicationError:
    """What an update's validator raises for a request the workflow cannot carry out now."""
    return ApplicationError(f"{update} refused: {why}", type="Refused", non_retryable=True)


M = TypeVar("M", bound=BaseModel)


def decode_payload(model: type[M], payloads: Sequence[Any], *, optional: bool = True,
                   context: dict[str, Any] | None = None) -> M:
    """The one argument of a signal or update, validated as `model`.

    No argument gives the model's defaults (when `optional`); more than one, anything that
    is not a JSON object, and anything the model refuses raise InvalidPayload naming the
    field and the value."""
    if not payloads:
        if not optional:
            raise InvalidPayload(f"expected one {model.__name__} argument, got none")
        payloads = [{}]
    if len(payloads) > 1:
        raise InvalidPayload(f"expected one argument, got {len(payloads)}")
    value = payloads[0]
    if isinstance(value, model):
        return value
    if value is None and optional:
        value = {}
    if isinstance(value, bytes | bytearray):
        raise InvalidPayload(f"expected a JSON object, got {len(value)} bytes of binary data")
    if not isinstance(value, dict):
        raise InvalidPayload(f"expected a JSON object, got {shorten(value)}")
    try:
        return model.model_validate(value, context=context)
    except ValidationError as exc:
        raise InvalidPayload(describe_errors(exc)) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise InvalidPayload(f"{type(exc).__name__}: {shorten(str(exc))}") from None


def expect_no_payload(payloads: Sequence[Any]) -> None:
    """For a signal that takes no argument: an argument is refused, not ignored."""
    if payloads and not (len(payloads) == 1 and payloads[0] in (None, {})):
        raise InvalidPayload(f"takes no argument, got {len(payloads)}")


def describe_errors(exc: ValidationError, limit: int = 5, prefix: str = "") -> str:
    """`field 'grace_seconds': Input should be a finite number (got inf)`, for each error."""
    parts = []
    for err in exc.errors(include_url=False)[:limit]:
        loc = ".".join(str(p) for p in ((prefix,) if prefix else ()) + tuple(err["loc"]))
        loc = loc or "(top level)"
        text = f"field {loc!r}: {str(err['msg']).removeprefix('Value error, ')}"
        if "input" in err and err["type"] not in ("missing",) and not isinstance(
                err["input"], dict):
            text += f" (got {shorten(err['input'])})"
        parts.append(text)
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more" if more > 0 else "")
