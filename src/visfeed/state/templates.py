"""Prompt templates: how a class name and a description become the sentence the text tower embeds.

One home for the templates, their check and their rendering: the run config validates a template, the
scoring session embeds rendered prompts and the baselines write them to ``descriptions.json``, and all
three must agree on every character (the embedding cache is keyed by exact text).
"""

from __future__ import annotations

from visfeed.errors import ConfigError

DEFAULT_TEMPLATE = "{classname}, which has {description}"
NAMELESS_TEMPLATE = "{description}"

#: Class name -> full prompt sentences (CuPL format).
PromptSet = dict[str, list[str]]


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
