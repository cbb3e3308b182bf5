"""Prompt templates: how a class name and a description become the sentence the text tower embeds.

One home for the templates, their check and their rendering: the run config validates a template, the
scoring session embeds rendered prompts and the baselines write them to ``descriptions.json``, and all
three must agree on every character (the embedding cache is keyed by exact text).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, cast, get_args

from visfeed.errors import ConfigError

DEFAULT_TEMPLATE = "{classname}, which has {description}"
NAMELESS_TEMPLATE = "{description}"

#: Class name -> full prompt sentences (CuPL format).
PromptSet = dict[str, list[str]]

#: Description file formats (read by ``visfeed.tools.feedback.description_files``); ``auto`` detects by its rules.
FileFormat = Literal["cupl", "lines", "dclip", "ivf"]
DescriptionFormat = Literal["auto", "cupl", "lines", "dclip", "ivf"]
FORMATS: tuple[str, ...] = get_args(DescriptionFormat)


def check_format(fmt: str) -> DescriptionFormat:
    """A user-given format name, checked (usage error listing the known ones)."""
    key = fmt.strip().lower()
    if key not in FORMATS:
        raise ConfigError(f"unknown description file format {fmt!r}; known: {', '.join(FORMATS)}")
    return cast(DescriptionFormat, key)


def parse_source(spec: str, default: str = "auto") -> tuple[Path, DescriptionFormat]:
    """``FORMAT:PATH`` or ``PATH`` -> (path, format); a prefix is taken only when it names a format."""
    head, sep, rest = spec.partition(":")
    if sep and head.strip().lower() in FORMATS and rest:
        return Path(rest), check_format(head)
    return Path(spec), check_format(default)


def check_template(template: str) -> str:
    """Reject templates that lack ``{description}`` or use fields other than ``{classname}``/``{description}``."""
    if "{description}" not in template:
        raise ConfigError(f"template {template!r} must contain {{description}}")
    try:
        template.format(classname="x", description="y")
    except (KeyError, IndexError, ValueError) as exc:
        raise ConfigError(
            f"template {template!r} is invalid: only {{classname}} and {{description}} are allowed"
        ) from exc
    return template


def render_prompt(template: str, classname: str, description: str) -> str:
    """Join a class name and a description with the template (``{classname}``, ``{description}``)."""
    return template.format(classname=classname, description=description.strip().rstrip("."))
