"""harmony_np's benchmark scenarios and comparison command; not part of the installed package.

``benchmarks/scenarios.py`` builds the inputs (asv_bench/ and the tests take them from there);
``python benchmarks/compare.py`` times harmony_np against openai_harmony side by side.
"""
