"""What the concept graph's nodes read through ``Runtime[ConceptContext]``: never checkpointed."""

from __future__ import annotations

from dataclasses import dataclass

from visfeed.agents.trace import Tracer
from visfeed.state.concepts import ConceptSettings
from visfeed.tools.llm import LLMClient


@dataclass
class ConceptContext:
    """Settings, class names and the LLM client of one tree build; rebuilt when a build resumes."""

    settings: ConceptSettings
    classnames: list[str]
    domain: str
    client: LLMClient
    tracer: Tracer
