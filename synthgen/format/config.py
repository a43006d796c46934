"""TOML files with dotted ``--set`` overrides, loaded into dataclass sections with one-line errors.

Job files (:mod:`synthgen.job`) and relight's training configs
(:mod:`relight.config`) are both ``[section]`` tables of typed keys whose
defaults live in dataclasses. This module is their shared loader: the TOML
file and its overrides become one dict (:func:`load_toml`), and
:func:`fill_sections` sets the dataclass fields from it, refusing unknown
sections and keys (with "did you mean") and values of the wrong type, so a
typo never silently falls back to a default. Range and choice checks stay
with each config.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from typing import Any, Callable


class ConfigError(ValueError):
    """A bad config file or override; the message names the file and key."""

    exit_code = 2  # bad usage (assets_manifest.cli_errors)


Coerce = Callable[[str, str, Any, Any], Any]


def suggest(key: str, options: list[str]) -> str:
    """"; did you mean X?" for the closest option, else the list of known ones."""
    close = difflib.get_close_matches(key, options, n=1)
    return f"; did you mean {close[0]}?" if close else f"; known: {', '.join(options)}"


def coerce_value(where: str, key: str, value: Any, default: Any) -> Any:
    """``value`` checked against the type of ``default`` (bool, int, float, str, list); else ConfigError."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be true or false, got {value!r}")
        return value
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: {key} must be an integer, got {value!r}")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ConfigError(f"{where}: {key} must be a string, got {value!r}")
        return value
    if isinstance(default, list):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: {key} must be a list, got {value!r}")
        return list(value)
    return value


def fill_sections(obj: Any, data: dict[str, Any], sections: list[str], where: str, coerce: Coerce | None = None) -> None:
    """Set ``obj.<section>.<key>`` from a TOML-shaped dict; unknown sections/keys and bad types raise ConfigError.

    Each section of ``obj`` is a dataclass; ``coerce(where, key, value,
    default)`` checks a value against the field's current (default) value.
    """
    coerce = coerce or coerce_value
    for sec_name, sec_val in data.items():
        if sec_name not in sections:
            raise ConfigError(f"{where}: unknown section [{sec_name}]{suggest(sec_name, list(sections))}")
        if not isinstance(sec_val, dict):
            raise ConfigError(f"{where}: [{sec_name}] must be a table")
        section = getattr(obj, sec_name)
        names = [f.name for f in dataclasses.fields(section)]
        for key, value in sec_val.items():
            dotted = f"{sec_name}.{key}"
            if key not in names:
                raise ConfigError(f"{where}: {dotted}: unknown key{suggest(dotted, [f'{sec_name}.{n}' for n in names])}")
            setattr(section, key, coerce(where, dotted, value, getattr(section, key)))


def parse_override(text: str, example: str = "render.samples=16") -> tuple[str, Any]:
    """``render.samples=16`` -> ("render.samples", 16); values are TOML (strings may be bare)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected key=value, e.g. {example}")
    key, raw = text.split("=", 1)
    key, raw = key.strip(), raw.strip()
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key, value


def load_toml(path: str | None, overrides: list[str] = (), what: str = "job file",
              example: str = "render.samples=16") -> dict[str, Any]:
    """The TOML file at ``path`` (none: empty) with each ``section.key=value`` override applied.

    ``what`` names the file in messages ("job file", "config file");
    ``example`` is the override shown in them.
    """
    data: dict[str, Any] = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"{path}: {what} not found") from None
        except tomllib.TOMLDecodeError as e:
            raise ConfigError(f"{path}: not valid TOML ({e})") from None
    for text in overrides:
        key, value = parse_override(text, example)
        if key.count(".") != 1:
            raise ConfigError(f"--set {key}: keys are section.name, e.g. {example.split('=')[0]}")
        sec, name = key.split(".")
        section = data.setdefault(sec, {})
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: [{sec}] must be a table")
        section[name] = value
    return data
