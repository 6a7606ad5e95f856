"""qwenharness: validation and benchmark suite for Qwen models served by vLLM."""

__version__ = "0.1.0"
