"""Prompt-cache figures for a replayed agent loop, computed the same way for every packer.

The figures are ``ctxsched.replay``'s (its docstring defines them), with tiktoken's o200k_base encoder: every
packer's prompts are rendered and tokenised by the reference, not by ctxsched's own counting.
"""

from __future__ import annotations

from ctxsched.replay import CACHED_PRICE, Renderer, chatml, common_prefix
from ctxsched.replay import CacheFigures as _Figures
from tests.reference import reference

__all__ = ["CACHED_PRICE", "CacheFigures", "chatml", "common_prefix"]


def CacheFigures() -> _Figures:
    """Figures for one packer at one budget, rendered with tiktoken."""
    return _Figures(Renderer(reference("o200k_base").encode_ordinary))
