"""Chat-style prompts: a conversation of system, user and assistant messages rendered
as one text for a language model to continue, as in the study notes::

    <SYSTEM>
    You are a helpful assistant.
    <USER>
    What is the capital of France?
    <ASSISTANT>

The model writes the assistant's reply after the last marker, and ends it with the
end marker (``<EOS>``), which a model trained on such text learns to produce; earlier
assistant turns in the conversation carry it too. Generation stops at the end marker
or at the start of a new turn (a model that forgets to end may go on to write the
user's next message).

The markers can be registered as special tokens of a `BPETokenizer` (`register`): each
is then one id that ordinary text never produces, and `encode` puts the ids where the
markers go while encoding the messages' contents as plain text, so a user who types
"<SYSTEM>" gets those characters, not the marker. Unregistered, the markers are plain
text, which works with any tokenizer (a character tokenizer trained on chat
transcripts, say); generation then stops at their strings instead of their ids.

>>> template = ChatTemplate()
>>> print(template.render([("system", "Be brief."), ("user", "Capital of France?")]))
<SYSTEM>
Be brief.
<USER>
Capital of France?
<ASSISTANT>
<BLANKLINE>
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .text import stream_text

__all__ = ["ChatTemplate", "ROLES"]

ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ChatTemplate:
    """The markers of a chat prompt and how messages are laid out: each message is
    ``marker + separator + content + separator``, an assistant message ends its content
    with `end`, and the prompt for a reply ends with ``assistant + separator``."""

    system: str = "<SYSTEM>"
    user: str = "<USER>"
    assistant: str = "<ASSISTANT>"
    end: str = "<EOS>"
    separator: str = "\n"

    def __post_init__(self):
        for name in ("system", "user", "assistant", "end"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ValueError(f"ChatTemplate.{name} must be a non-empty string")
        if len(set(self.special_tokens)) != 4:
            raise ValueError(f"ChatTemplate: the markers must differ, got {self.special_tokens}")
        if not isinstance(self.separator, str):
            raise ValueError("ChatTemplate.separator must be a string")

    @property
    def special_tokens(self) -> list:
        """The four markers, to register as special tokens."""
        return [self.system, self.user, self.assistant, self.end]

    # ------------------------------------------------------------------ layout
    def _segments(self, messages, add_generation_prompt: bool) -> list:
        """The prompt as a list of ``(is_marker, text)`` pieces."""
        markers = {"system": self.system, "user": self.user, "assistant": self.assistant}
        sep, pieces = self.separator, []
        for i, message in enumerate(messages):
            role, content = _role_content(message, i)
            if role == "system" and i != 0:
                raise ValueError(f"message {i}: a system message can only come first")
            pieces += [(True, markers[role]), (False, sep + content)]
            if role == "assistant":
                pieces.append((True, self.end))
            pieces.append((False, sep))
        if add_generation_prompt:
            pieces += [(True, self.assistant), (False, sep)]
        return pieces

    def render(self, messages, add_generation_prompt: bool = True) -> str:
        """The conversation as text. `messages`: ``{"role": ..., "content": ...}`` dicts
        or ``(role, content)`` pairs, roles "system" (first only), "user", "assistant".
        ``add_generation_prompt``: end with the assistant marker, for the model to
        reply; False renders a finished conversation (training text)."""
        return "".join(text for _, text in self._segments(messages, add_generation_prompt))

    def register(self, tokenizer) -> dict:
        """Register the markers as special tokens of `tokenizer` (a `BPETokenizer`);
        returns name -> id. Register before training the model on chat text: the
        vocabulary grows by four ids."""
        if not hasattr(tokenizer, "add_special_tokens"):
            raise TypeError(f"{type(tokenizer).__name__} cannot add special tokens after it "
                            "is built; create it with special_tokens=template.special_tokens")
        return tokenizer.add_special_tokens(self.special_tokens)

    def _registered(self, tokenizer) -> dict:
        specials = getattr(tokenizer, "special_tokens", None) or {}
        return {m: specials[m] for m in self.special_tokens if m in specials}

    def encode(self, tokenizer, messages, add_generation_prompt: bool = True) -> list:
        """The rendered conversation as token ids: registered markers as their special
        ids, everything else (the contents too) as ordinary text."""
        registered = self._registered(tokenizer)
        plain = getattr(tokenizer, "encode_ordinary", tokenizer.encode)
        ids, text = [], ""
        for is_marker, piece in self._segments(messages, add_generation_prompt):
            if is_marker and piece in registered:
                if text:
                    ids += plain(text)
                ids.append(registered[piece])
                text = ""
            else:
                text += piece
        if text:
            ids += plain(text)
        return ids

    # ------------------------------------------------------------------ replies
    def _stops(self, tokenizer) -> tuple:
        """``(eos ids, stop strings)``: the end of the reply and the start of a new turn,
        as ids where registered, as strings where not."""
        registered = self._registered(tokenizer)
        ends = [self.end, self.user, self.system]
        return ([registered[m] for m in ends if m in registered],
                [m for m in ends if m not in registered])

    def stream(self, model, tokenizer, messages, max_new_tokens: int, **kwargs):
        """Stream the assistant's reply to `messages` as text (see `stream_text`; its
        sampling arguments apply). Ends at the end marker or at a new turn's marker."""
        eos, stops = self._stops(tokenizer)
        return stream_text(model, tokenizer, self.encode(tokenizer, messages), max_new_tokens,
                           eos_id=eos or None, stop=stops or None, **kwargs)

    def reply(self, model, tokenizer, messages, max_new_tokens: int, **kwargs) -> str:
        """The assistant's reply to `messages`, as one string (see `stream`)."""
        return "".join(self.stream(model, tokenizer, messages, max_new_tokens, **kwargs))


def _role_content(message, i: int) -> tuple:
    if isinstance(message, Mapping):
        role, content = message.get("role"), message.get("content")
    elif isinstance(message, (tuple, list)) and len(message) == 2:
        role, content = message
    else:
        raise ValueError(f"message {i} must be a {{'role', 'content'}} dict or a (role, "
                         f"content) pair, got {message!r}")
    if role not in ROLES:
        raise ValueError(f"message {i}: role must be one of {ROLES}, got {role!r}")
    if not isinstance(content, str):
        raise ValueError(f"message {i}: content must be a string, got {type(content).__name__}")
    return role, content
