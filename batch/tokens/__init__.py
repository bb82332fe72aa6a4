"""Token counts computed offline: image tokens by the published per-model formulas, text
tokens by the model's tokenizer."""

from .image import image_tokens
from .text import chat_prompt_tokens, count_text, get_encoding

__all__ = ["chat_prompt_tokens", "count_text", "get_encoding", "image_tokens"]
