"""The ``eyes`` LLM provider: the embedded stand-in for a multimodal LLM, built on the ``local`` provider.

Why here and not in :mod:`visfeed.tools.llm.providers`: the eyes build on the LLM package (its handle,
its local server, its message blocks), so the LLM package must not import them back. Providers name this
builder in :data:`~visfeed.tools.llm.providers.BUILTIN_PROVIDERS` and import it on first use.
"""

from __future__ import annotations

from pathlib import Path

from langchain_core.language_models import BaseChatModel

from visfeed.fileio import sha256_file
from visfeed.tools.llm.handle import ProviderHandle
from visfeed.tools.llm.providers import ProviderRequest, resolve_provider
from visfeed.tools.world.eyes.chat import TEXT_MAX_TOKENS, EyesChat, behaviour_key
from visfeed.tools.world.eyes.network import Eyes, shipped_eyes


def eyes_provider(checkpoint: str | None, request: ProviderRequest) -> ProviderHandle:
    """The eyes network at ``checkpoint`` (default: the shipped one), with SmolLM2 as its language half.

    The text model answers greedily and briefly (a label guess is a few words); ``no_text`` in the
    request's options leaves it out, so the eyes can only describe (tests, and machines without the
    'local' extra).
    """
    path = Path(checkpoint) if checkpoint else shipped_eyes()
    eyes = Eyes.load(path)
    text = None
    if not request.options.get("no_text"):
        text = resolve_provider(
            "local",
            temperature=0.0,
            timeout_s=request.timeout_s,
            local_seed=request.local_seed,
            local_n_threads=request.local_n_threads,
            local_log_path=request.local_log_path,
        )
    seed, name = request.local_seed, f"eyes-{sha256_file(path)[:12]}"

    def build() -> BaseChatModel:
        language = None if text is None else text.chat_model.bind(extra_body={"max_tokens": TEXT_MAX_TOKENS}, seed=seed)
        return EyesChat(eyes=eyes, text_model=language, model_name=name)

    return ProviderHandle(
        provider="eyes",
        model=name + ("" if text is None else f"+{text.model}"),
        factory=build,
        call_style="generic",
        structured_mode="native",  # EyesChat.with_structured_output: the text model's grammar-constrained answer
        endpoint=f"eyes-behaviour:{behaviour_key()}",  # cached answers follow the wording and prompt, too
        free=True,
        servers=[] if text is None else text.servers,
        accepts_images=True,
    )
