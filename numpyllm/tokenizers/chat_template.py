"""Chat templates: a conversation rendered to the text a chat model was trained on.

A chat model sees a conversation as one text with markers around each message, for
Qwen2 (ChatML):

    <|im_start|>system
    You are helpful.<|im_end|>
    <|im_start|>user
    Hi!<|im_end|>
    <|im_start|>assistant

A Hugging Face directory ships that format as a Jinja template (`chat_template` in
tokenizer_config.json, or chat_template.jinja), which `render_chat_template` renders as
`transformers`' ``apply_chat_template`` does: the same Jinja settings (``trim_blocks``,
``lstrip_blocks``, the loop-controls extension), the same `tojson` filter, and the globals
`raise_exception` and `strftime_now`.

A template comes with a downloaded model, so it is untrusted code: it runs in Jinja's
``ImmutableSandboxedEnvironment``, where ``{{ ''.__class__ }}`` and the like raise
`ChatTemplateError` (a `TokenizerError`) instead of reaching Python's internals, and
lists and dicts cannot be changed. (One difference from `transformers`: there an unsafe
attribute renders as an empty string; here it is an error at once.)

jinja2 is optional (``pip install numpyllm[chat]``), imported only when a template is
rendered; `import numpyllm` never imports it.
"""
from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from typing import Mapping, Sequence

from .errors import TokenizerError

__all__ = ["ChatTemplateError", "render_chat_template"]


class ChatTemplateError(TokenizerError):
    """A chat template failed: a syntax error, a sandbox violation, or its own
    `raise_exception`."""


def _jinja():
    try:
        import jinja2
        import jinja2.ext
        import jinja2.sandbox
    except ImportError:
        raise ChatTemplateError("rendering a chat template needs jinja2: pip install "
                                "numpyllm[chat]") from None
    return jinja2


@lru_cache(maxsize=16)
def _compile(template: str):
    jinja2 = _jinja()

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        # transformers' filter: Jinja's own escapes HTML characters, which chat text is not
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators,
                          sort_keys=sort_keys)

    def strftime_now(fmt):
        return datetime.now().strftime(fmt)

    class Sandbox(jinja2.sandbox.ImmutableSandboxedEnvironment):
        # Jinja's sandbox turns an unsafe attribute into an undefined value that raises
        # only when used further, so {{ ''.__class__ }} prints ''. A template that even
        # tries is refused here at once (transformers renders the '').
        def unsafe_undefined(self, obj, attribute):
            raise jinja2.sandbox.SecurityError(
                f"access to attribute {attribute!r} of {type(obj).__name__!r} object is unsafe")

    env = Sandbox(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    try:
        return env.from_string(template)
    except jinja2.exceptions.TemplateError as exc:
        raise ChatTemplateError(f"chat template: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None


def render_chat_template(template: str, messages: Sequence[Mapping], *,
                         add_generation_prompt: bool = False, **variables) -> str:
    """`template` rendered for `messages` (a list of {"role": ..., "content": ...}).

    The template sees `messages`, `add_generation_prompt`, ``tools=None``,
    ``documents=None`` and `variables` (the tokenizer passes `bos_token`, `eos_token` ...).

    >>> chatml = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\\n{{ m['content'] }}"
    ...           "<|im_end|>\\n{% endfor %}{% if add_generation_prompt %}<|im_start|>"
    ...           "assistant\\n{% endif %}")
    >>> print(render_chat_template(chatml, [{"role": "user", "content": "Hi!"}],
    ...                            add_generation_prompt=True))
    <|im_start|>user
    Hi!<|im_end|>
    <|im_start|>assistant
    <BLANKLINE>
    """
    if not isinstance(messages, (list, tuple)) or not all(isinstance(m, Mapping)
                                                           for m in messages):
        raise TypeError("messages must be a list of dicts like {'role': 'user', 'content': "
                        "'...'}")
    compiled = _compile(template)
    jinja2 = _jinja()
    variables = {"tools": None, "documents": None, **variables}
    try:
        return compiled.render(messages=[dict(m) for m in messages],
                               add_generation_prompt=add_generation_prompt, **variables)
    # SecurityError is a TemplateError; a template can also fail as Python code fails.
    except (jinja2.exceptions.TemplateError, ArithmeticError, LookupError, TypeError,
            ValueError, RecursionError) as exc:
        raise ChatTemplateError(f"chat template: {type(exc).__name__}: "
                                f"{str(exc).splitlines()[0] if str(exc) else ''}") from None
