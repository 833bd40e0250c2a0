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
from .recover import RecoveryResult
from .stream import StreamableParser


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
    "RecoveryResult",
    "StreamState",
    "HarmonyError",
    "__version__",
]
