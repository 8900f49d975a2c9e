"""Reading a config value as its declared type: the one coercion that config files, the command line and a
method's own options share. It sits below `ltlab.config` and `ltlab.optim`, which both use it."""
from __future__ import annotations

import math
import typing
from typing import Any

from .errors import ConfigError


def coerce(key: str, value: Any, tp: Any, choices: tuple[str, ...] | None = None) -> Any:
    """`value` read as type `tp` (int, float, bool, str, X | None, list[str]); the error names the key. `choices`:
    the values a list's items may take."""
    if typing.get_origin(tp) is list:  # a YAML list, or "a,b" on the command line
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{key}={value!r}: expected a list, e.g. {key}=a,b")
        out = [coerce(key, v.strip() if isinstance(v, str) else v, typing.get_args(tp)[0]) for v in items]
        allowed = choices
        bad = [v for v in out if allowed and v not in allowed]
        if bad:
            raise ConfigError(f"{key}: {bad[0]!r} is not one of {', '.join(allowed)}")
        return out
    args = typing.get_args(tp)
    if value is None:
        if type(None) in args:
            return None
        raise ConfigError(f"{key}=null is not allowed; give a {getattr(tp, '__name__', tp)}")
    base = next((a for a in args if a is not type(None)), tp) if args else tp
    if base is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}={value!r}: expected true or false")
    if base is int:
        if isinstance(value, str):
            try:
                value = int(value) if value.strip().lstrip("+-").isdigit() else float(value)
            except ValueError:
                raise ConfigError(f"{key}={value!r}: expected an integer") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value}: expected an integer")
        if isinstance(value, bool) or not (isinstance(value, int) or (isinstance(value, float) and value.is_integer())):
            raise ConfigError(f"{key}={value!r}: expected an integer")
        return int(value)
    if base is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string: accept what float() accepts
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}={value!r}: expected a number, e.g. 0.001 or 1e-3") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}={value!r}: expected a number")
        if not math.isfinite(value):
            raise ConfigError(f"{key}={value}: must be a finite number")
        return float(value)
    if base is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise ConfigError(f"{key}={value!r}: expected a string")
        return str(value)
    return value


def check_count(name: str, value: Any, low: int = 1) -> int:
    """A whole-number argument of a library function (samples, steps, products): at least `low`, else a ValueError
    that names it. numpy integers pass; a bool or a float does not."""
    if isinstance(value, bool) or not hasattr(value, "__index__") or value < low:
        raise ValueError(f"{name}={value!r}: must be a whole number >= {low}")
    return int(value)


def check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name}={value}: must be > 0")
