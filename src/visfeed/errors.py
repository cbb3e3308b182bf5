"""The package's error hierarchy.

Every error a user can cause or meet derives from :class:`VisfeedError`, so callers (and the CLI) can
catch one type. Errors carry the context needed to fix the problem and say how in their message; their
constructors have no side effects so they serialize cleanly into traces.
"""

from __future__ import annotations


class VisfeedError(Exception):
    """Base class of every error raised on purpose by visfeed."""


class ConfigError(VisfeedError, ValueError):
    """Bad usage: an invalid option, config value or argument. The CLI maps it to exit code 2."""


class DataError(VisfeedError, ValueError):
    """Bad input data: missing folders, unreadable files, empty or inconsistent label sets."""


class ModelError(VisfeedError):
    """A backbone could not be found or loaded (unknown name, missing checkpoint, download refused)."""


class EmbeddingError(VisfeedError, ValueError):
    """Embeddings are unusable: NaN or infinite values, wrong dimensions, empty inputs."""


class CacheError(VisfeedError):
    """An on-disk cache is unreadable or inconsistent; the message names the file."""


class ProviderError(VisfeedError):
    """An LLM provider failed after its retries, or could not be set up.

    Attributes name the provider, the model, the HTTP status and the server's retry-after hint where known.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.provider = provider
        self.model = model
        self.status = status
        self.retry_after = retry_after


class OutputParseError(VisfeedError, ValueError):
    """A model's reply is not JSON matching the expected schema; the message is meant to be shown to the model."""


class BudgetExceeded(VisfeedError):
    """The run's LLM budget (calls, tokens or cost) would be exceeded by the next call."""
