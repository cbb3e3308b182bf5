"""What the concept graph's nodes read through ``Runtime[ConceptContext]``: never checkpointed."""

from __future__ import annotations

from dataclasses import dataclass

from visfeed.agents.trace import Tracer
from visfeed.state.concepts import ConceptSettings
from visfeed.tools.concepts.grounding import ImageEvidence
from visfeed.tools.llm import LLMClient


@dataclass
class ConceptContext:
    """Settings, class names, the LLM client and the image evidence of one tree build; rebuilt on resume."""

    settings: ConceptSettings
    classnames: list[str]
    domain: str
    client: LLMClient
    tracer: Tracer
    evidence: ImageEvidence | None = None
    """The classes' feedback images: values are chosen by them when given (``settings.ground``)."""
