"""The one exception type of harmony_np, as openai_harmony has it."""


class HarmonyError(RuntimeError):
    """An error of rendering, parsing or decoding (openai_harmony's ``HarmonyError``)."""
