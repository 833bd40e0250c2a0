"""The one exception type of harmony_np, as openai_harmony has it, and the wording of an error
that one item of a batch raised."""


class HarmonyError(RuntimeError):
    """An error of rendering, parsing or decoding (openai_harmony's ``HarmonyError``)."""


def with_index(exc: Exception, where: str) -> Exception:
    """The same kind of error, its text prefixed with which item of a batch failed (``where``,
    e.g. ``"conversation 3"``); ``exc`` itself when its type wants more than a message."""
    try:
        return type(exc)(f"{where}: {exc}")
    except Exception:
        return exc


# What one bad item of a batch (a row, a line, a conversation) may raise: reported with that item
# and the rest carried on. Anything else (MemoryError, KeyboardInterrupt, ...) ends the run.
DATA_ERRORS = (ValueError, TypeError, LookupError, AttributeError, RuntimeError, ArithmeticError)
