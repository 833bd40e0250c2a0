"""harmony_np: the Harmony response format of gpt-oss as a Numba/NumPy engine.

A drop-in for ``openai_harmony`` (same names, the same tokens and messages, the same errors),
with NumPy forms of rendering and parsing for batch work.
"""

from ._version import __version__
from .encoding import HarmonyEncoding, load_harmony_encoding
from .errors import HarmonyError
from .model import (
    Author,
    ChannelConfig,
    Content,
    Conversation,
    DeveloperContent,
    HarmonyEncodingName,
    Message,
    ReasoningEffort,
    RenderConversationConfig,
    RenderOptions,
    Role,
    StreamState,
    SystemContent,
    TextContent,
    ToolDescription,
    ToolNamespaceConfig,
)


def __getattr__(name):
    # the streaming parser module is imported on first use
    if name == "StreamableParser":
        from .stream import StreamableParser

        return StreamableParser
    raise AttributeError(f"module 'harmony_np' has no attribute {name!r}")


__all__ = [
    "Role",
    "Author",
    "Content",
    "TextContent",
    "DeveloperContent",
    "ToolDescription",
    "ToolNamespaceConfig",
    "ChannelConfig",
    "ReasoningEffort",
    "SystemContent",
    "Message",
    "Conversation",
    "RenderConversationConfig",
    "RenderOptions",
    "HarmonyEncoding",
    "HarmonyEncodingName",
    "load_harmony_encoding",
    "StreamableParser",
    "StreamState",
    "HarmonyError",
    "__version__",
]
