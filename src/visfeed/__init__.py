"""visfeed: optimize the text descriptions of image classes with visual feedback (arXiv 2311.11904)."""

from visfeed.errors import VisfeedError

__all__ = ["VisfeedError", "__version__"]
__version__ = "0.1.0"
