"""``HarmonyEncoding``: the encoding object of openai_harmony, on tiktoken's BPE and NumPy buffers."""

from __future__ import annotations

import functools
import re
from typing import AbstractSet, Collection, List, Literal, Optional, Sequence, Union

import numpy as np

from .errors import HarmonyError
from .rust_text import decode_error, unknown_token_error, surrogate_error
from .model import (
    Conversation,
    HarmonyEncodingName,
    Message,
    RenderConversationConfig,
    RenderOptions,
    Role,
)
from .lazy import kernels, lazy_module
from .parse import parse_completion
from .bpe import ordinary_bpe
from .gate import as_u32, first_unknown, kernel_token_array
from .vocab import CALL, END, N_ORDINARY, N_VOCAB, RETURN, SPECIAL_TOKENS, Vocabulary, load_vocabulary
from .tuning import GATHER_KERNEL_MIN

__all__ = ["HarmonyEncoding", "load_harmony_encoding"]



def _disallowed_special_error(token: str) -> HarmonyError:
    return HarmonyError(
        "Encountered text corresponding to disallowed special token "
        f"{token!r}.\n"
        "If you want this text to be encoded as a special token, "
        f"pass it to `allowed_special`, e.g. `allowed_special={{'{token}', ...}}`.\n"
        "If you want this text to be encoded as normal text, disable the check for this token "
        f"by passing `disallowed_special=(enc.special_tokens_set - {{'{token}'}})`.\n"
        "To disable this check for all special tokens, pass `disallowed_special=()`.\n"
    )


@functools.lru_cache(maxsize=64)
def _special_regex(tokens: frozenset) -> "re.Pattern[str]":
    # longest first, so that a token that is a prefix of another never wins the alternation
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=lambda s: (-len(s), s))))


_ALL_SPECIALS = frozenset(SPECIAL_TOKENS)


def _surrogates_replaced(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


class HarmonyEncoding:
    """Renders conversations to tokens and parses tokens back to messages (gpt-oss Harmony)."""

    def __init__(self, name: str, vocab: Vocabulary) -> None:
        self._name = name
        self._vocab = vocab
        self._renderer = None

    def __repr__(self) -> str:
        return f"<HarmonyEncoding {self._name!r}>"

    # -- vocabulary ------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """The encoding's name, ``"HarmonyGptOss"``."""
        return self._name

    @property
    def vocab(self) -> Vocabulary:
        """The byte table of every token id (flat bytes + offsets)."""
        return self._vocab

    @property
    def n_vocab(self) -> int:
        """Number of token ids, special tokens included (201,089)."""
        return N_VOCAB

    @functools.cached_property
    def special_tokens_set(self) -> set:
        """The text of every special token (``<|start|>``, ..., the ``<|reserved_…|>`` range)."""
        return set(SPECIAL_TOKENS)

    @property
    def _bpe(self):
        return self._vocab.bpe

    @property
    def _ordinary(self):
        return ordinary_bpe(self._vocab)

    def encode(
        self,
        text: str,
        *,
        allowed_special: Union[Literal["all"], AbstractSet[str]] = set(),
        disallowed_special: Union[Literal["all"], Collection[str]] = "all",
    ) -> List[int]:
        """Encode ``text`` to tokens; special-token text raises unless allowed (tiktoken's rules)."""
        if not isinstance(text, str):
            raise TypeError(f"argument 'text': '{type(text).__name__}' object cannot be converted to 'PyString'")
        all_allowed = isinstance(allowed_special, str) and allowed_special == "all"
        if all_allowed:
            allowed_special = self.special_tokens_set
        if disallowed_special == "all":
            disallowed_special = self.special_tokens_set - set(allowed_special)
        if disallowed_special:
            if "<|" in text:
                match = _special_regex(frozenset(disallowed_special)).search(text)
                if match:
                    raise _disallowed_special_error(match.group())
        pattern = None
        if allowed_special and "<|" in text:
            # only special tokens are ever matched (other strings in the set are ignored, as tiktoken does)
            allowed = _ALL_SPECIALS if all_allowed else _ALL_SPECIALS.intersection(allowed_special)
            if allowed:
                pattern = _special_regex(allowed)
        try:
            return self._encode_allowing(text, pattern)
        except UnicodeEncodeError:
            # tiktoken's rule for lone surrogates: replaced, then encoded
            return self._encode_allowing(_surrogates_replaced(text), pattern)

    def _encode_allowing(self, text: str, pattern) -> List[int]:
        encode = self._ordinary.encode
        if pattern is None:
            return encode(text)
        # tiktoken's rule: the allowed special tokens found in order, the text between them
        # encoded as ordinary text
        out: List[int] = []
        at = 0
        for match in pattern.finditer(text):
            if match.start() > at:
                out += encode(text[at : match.start()])
            out.append(SPECIAL_TOKENS[match.group()])
            at = match.end()
        if at < len(text):
            out += encode(text[at:])
        return out

    def encode_ordinary(self, text: str) -> List[int]:
        """Encode ``text`` with special-token text treated as plain text."""
        if not isinstance(text, str):
            raise TypeError(f"argument 'text': '{type(text).__name__}' object cannot be converted to 'PyString'")
        try:
            return self._ordinary.encode(text)
        except UnicodeEncodeError:
            return self._ordinary.encode(_surrogates_replaced(text))

    @property
    def bpe_backend(self) -> str:
        """The BPE backend that turns text into ids: ``"quicktok-v1 0.4.0"`` when the
        ``harmony-np[fast]`` extra is installed and verified, else ``"tiktoken ..."`` with the
        reason (see :mod:`harmony_np.bpe`; ``HARMONY_NP_BPE=tiktoken`` forces tiktoken)."""
        return self._ordinary.backend

    def decode_bytes(self, tokens: Sequence[int]) -> bytes:
        """The bytes of ``tokens`` (special tokens give their text); unknown ids raise."""
        arr = kernel_token_array(tokens, GATHER_KERNEL_MIN)
        bad = first_unknown(arr)
        if bad >= 0:
            raise HarmonyError(f"Invalid token for decoding: {bad}")
        return self._bpe.decode_bytes(arr.tolist()) if arr.size < GATHER_KERNEL_MIN else _gather_bytes(self._vocab, arr)

    def decode_utf8(self, tokens: Sequence[int]) -> str:
        """Decode to text; raises ``HarmonyError`` on unknown ids or invalid UTF-8."""
        arr = kernel_token_array(tokens, GATHER_KERNEL_MIN)
        bad = first_unknown(arr)
        if bad >= 0:
            raise unknown_token_error(bad)
        data = self._bpe.decode_bytes(arr.tolist()) if arr.size < GATHER_KERNEL_MIN else _gather_bytes(self._vocab, arr)
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise decode_error(data, exc) from None

    def decode(self, tokens: Sequence[int], errors: str = "replace") -> str:
        """Decode to text, with invalid UTF-8 handled by ``errors`` (default: replaced)."""
        return self.decode_bytes(tokens).decode("utf-8", errors=errors)

    def is_special_token(self, token: int) -> bool:
        """Whether ``token`` is one of the special tokens."""
        return N_ORDINARY <= as_u32(token, "token") < N_VOCAB  # pyo3's u32 extraction, its errors

    def stop_tokens(self) -> List[int]:
        """Tokens that end a message: ``<|return|>``, ``<|call|>``, ``<|end|>``."""
        return [RETURN, CALL, END]

    def stop_tokens_for_assistant_actions(self) -> List[int]:
        """Tokens that end the assistant's turn: ``<|return|>``, ``<|call|>``."""
        return [RETURN, CALL]

    # -- rendering -------------------------------------------------------------------------
    @property
    def renderer(self):
        if self._renderer is None:
            Renderer = lazy_module("render").Renderer

            self._renderer = Renderer(self._vocab)
        return self._renderer

    def render(self, message: Message, render_options: Optional[RenderOptions] = None) -> List[int]:
        """Tokens of one message."""
        try:
            return self.renderer.render_message(message, render_options)
        except Exception:
            lazy_module("render").raise_json_input_error(message, "message")
            raise

    def render_conversation(
        self, conversation: Conversation, config: Optional[RenderConversationConfig] = None
    ) -> List[int]:
        """Tokens of a conversation, as it stands."""
        try:
            return self.renderer.render_conversation(conversation, config, mode="conversation")
        except Exception:
            lazy_module("render").raise_json_input_error(conversation, "conversation")
            raise

    def render_conversation_for_completion(
        self,
        conversation: Conversation,
        next_turn_role: Role,
        config: Optional[RenderConversationConfig] = None,
    ) -> List[int]:
        """Tokens of a conversation followed by ``<|start|>`` and the next turn's role."""
        try:
            return self.renderer.render_conversation(conversation, config, mode="completion", next_role=next_turn_role)
        except Exception:
            lazy_module("render").raise_json_input_error(conversation, "conversation", next_turn_role)
            raise

    def render_conversation_for_training(
        self, conversation: Conversation, config: Optional[RenderConversationConfig] = None
    ) -> List[int]:
        """Tokens of a conversation; a closing assistant final message ends in ``<|return|>``."""
        try:
            return self.renderer.render_conversation(conversation, config, mode="training")
        except Exception:
            lazy_module("render").raise_json_input_error(conversation, "conversation")
            raise

    def _array(self, planner, args: tuple, out: Optional[np.ndarray]):
        render = lazy_module("render")

        # args: (message, options) for a message, (conversation, config, mode[, next role])
        kind = "message" if len(args) == 2 else "conversation"
        role = args[3] if len(args) > 3 else Role.ASSISTANT
        try:
            return self.renderer.to_array(planner(*args), out)
        except UnicodeEncodeError as exc:
            lazy_module("render").raise_json_input_error(args[0], kind, role)
            raise surrogate_error(exc) from None
        except HarmonyError:
            lazy_module("render").raise_json_input_error(args[0], kind, role)
            render.raise_surrogate_error(args[0])
            raise
        except Exception:
            lazy_module("render").raise_json_input_error(args[0], kind, role)
            raise

    # NumPy forms: a uint32 array, or written into ``out`` (a preallocated uint32 buffer), in
    # which case the number of tokens written is returned.
    def render_np(self, message: Message, render_options: Optional[RenderOptions] = None, *, out: Optional[np.ndarray] = None):
        """:meth:`render` as a ``uint32`` array (or into ``out``; returns the count)."""
        return self._array(self.renderer.message_plan, (message, render_options), out)

    def render_conversation_np(self, conversation: Conversation, config: Optional[RenderConversationConfig] = None, *, out: Optional[np.ndarray] = None):
        """:meth:`render_conversation` as a ``uint32`` array (or into ``out``; returns the count)."""
        return self._array(self.renderer.conversation_plan, (conversation, config, "conversation"), out)

    def render_conversation_for_completion_np(
        self, conversation: Conversation, next_turn_role: Role, config: Optional[RenderConversationConfig] = None, *, out: Optional[np.ndarray] = None
    ):
        """:meth:`render_conversation_for_completion` as a ``uint32`` array (or into ``out``)."""
        return self._array(self.renderer.conversation_plan, (conversation, config, "completion", next_turn_role), out)

    def render_conversation_for_training_np(self, conversation: Conversation, config: Optional[RenderConversationConfig] = None, *, out: Optional[np.ndarray] = None):
        """:meth:`render_conversation_for_training` as a ``uint32`` array (or into ``out``)."""
        return self._array(self.renderer.conversation_plan, (conversation, config, "training"), out)

    # -- batch -----------------------------------------------------------------------------
    def render_batch(
        self,
        conversations,
        *,
        mode: str = "completion",
        next_role: Role = Role.ASSISTANT,
        config: Optional[RenderConversationConfig] = None,
        loss_mask: Optional[bool] = None,
        mask_last_assistant_only: bool = False,
    ):
        """Render many conversations into one :class:`~harmony_np.ragged.RaggedTokens`.

        Row ``i`` equals the single render of conversation ``i`` in ``mode`` (``"completion"``,
        ``"conversation"`` or ``"training"``). ``.loss_mask`` (default on in training mode) is 1
        on assistant output: from after the role through the terminator.
        """
        render_batch = lazy_module("render_batch").render_batch

        try:
            return render_batch(
                self, conversations, mode=mode, next_role=next_role, config=config,
                loss_mask=loss_mask, mask_last_assistant_only=mask_last_assistant_only,
            )
        except UnicodeEncodeError as exc:
            raise surrogate_error(exc) from None

    def parse_batch(self, completions, *, offsets=None, role: Optional[Role] = None, strict: bool = True, errors: str = "raise"):
        """Parse many completions at once into a columnar :class:`~harmony_np.parse_batch.MessageTable`.

        ``completions`` is a list of token lists/arrays, or one flat token array with
        ``offsets`` (len n + 1). ``errors="raise"`` raises the first completion's error with its
        index; ``"collect"`` keeps going and records each failed completion's error text in
        ``.errors``; ``"recover"`` also reads each failed completion by the recovery rules
        (:meth:`recover_messages_from_completion_tokens`), with its unparsed ranges and
        diagnostics as columns. ``.to_messages()`` equals the single-call parse of each
        completion (the recovered messages, for a recovered one).
        """
        parse_batch = lazy_module("parse_batch").parse_batch

        return parse_batch(self, completions, offsets=offsets, role=role, strict=strict, errors=errors)

    # -- chat format -----------------------------------------------------------------------
    def apply_chat_template(
        self,
        conversation,
        *,
        tools=None,
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        return_dict: bool = False,
        return_assistant_tokens_mask: bool = False,
        reasoning_effort: Optional[str] = None,
        model_identity: Optional[str] = None,
        builtin_tools=None,
        date=None,
    ):
        """Chat-format messages through the gpt-oss chat template, as Hugging Face's
        ``tokenizer.apply_chat_template`` renders it (character for character).

        ``conversation`` is a list of chat messages (dicts with ``role``, ``content``, and for
        assistant turns ``thinking`` or ``tool_calls``), or a list of such lists (a batch).
        ``tools`` are OpenAI-style function tools; ``reasoning_effort``, ``model_identity`` and
        ``builtin_tools`` (``"browser"``, ``"python"``) are the template's variables (None: its
        default); ``date`` is the current date it prints (None: today).

        One conversation: the text (``tokenize=False``), its ids (``encode(text,
        allowed_special="all")``), or with ``return_dict`` ``{"input_ids": ...}`` plus
        ``"assistant_masks"`` (1 on every assistant turn's tokens, ``<|start|>`` through its
        terminator) when ``return_assistant_tokens_mask``. A batch: a list of texts, or a
        :class:`~harmony_np.ragged.RaggedTokens` whose ``loss_mask`` is the assistant mask (with
        ``return_dict``, ``{"input_ids": rows, "assistant_masks": rows of the mask}``); row ``i``
        equals the single call of conversation ``i``. Where the template raises, this raises
        :class:`~harmony_np.chat_template.ChatTemplateError` (a ``ValueError``) with its
        message.
        """
        return lazy_module("chat_render").apply_chat_template(
            self, conversation, tools=tools, add_generation_prompt=add_generation_prompt, tokenize=tokenize,
            return_dict=return_dict, return_assistant_tokens_mask=return_assistant_tokens_mask,
            reasoning_effort=reasoning_effort, model_identity=model_identity, builtin_tools=builtin_tools, date=date,
        )

    # -- parsing ---------------------------------------------------------------------------
    def parse_messages_from_completion_tokens(
        self, tokens: Sequence[int], role: Optional[Role] = None, *, strict: bool = True
    ) -> List[Message]:
        """Messages of a completion (tokens after ``<|start|>``, or after ``role`` when given)."""
        return parse_completion(self, tokens, role, strict)

    def recover_messages_from_completion_tokens(self, tokens: Sequence[int], role: Optional[Role] = None):
        """Messages of a completion that may break the format; never raises on valid token ids.

        Returns a :class:`~harmony_np.recover.RecoveryResult` (``messages``, ``spans``,
        ``unparsed``, ``diagnostics``); well-formed input gives the strict parse and no
        diagnostics. The rules are in ``docs/recovery.md``.
        """
        from .recover import recover_completion

        return recover_completion(self, tokens, role)


def _gather_bytes(vocab: Vocabulary, arr: np.ndarray) -> bytes:
    gather_bytes = kernels().gather_bytes

    return gather_bytes(vocab.flat, vocab.offsets, arr).tobytes()


@functools.lru_cache(maxsize=None)
def _load(name: str) -> HarmonyEncoding:
    return HarmonyEncoding(name, load_vocabulary())


def load_harmony_encoding(name: Union[str, HarmonyEncodingName]) -> HarmonyEncoding:
    """The encoding ``name`` (only ``HarmonyEncodingName.HARMONY_GPT_OSS`` exists)."""
    if not isinstance(name, str):
        name = str(name)
    name = str(name.value) if isinstance(name, HarmonyEncodingName) else name
    if name != "HarmonyGptOss":
        raise ValueError(f"Invalid HarmonyEncodingName: {name}")
    return _load(name)
