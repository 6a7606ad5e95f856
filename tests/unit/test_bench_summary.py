"""The end-of-run benchmark line: figures from extra_info, the overhead goal judged, gaps named."""

from __future__ import annotations

from qwenharness.bench_summary import summary_line


def test_summary_line_reports_each_measured_figure() -> None:
    figures = {
        "test_offline_throughput": {"output_tokens_per_s": 19129.2},
        "batch_32": {"output_tokens_per_s": 3944.6},
        "batch_1": {"output_tokens_per_s": 146.5, "bandwidth_fraction": 0.7231},
        "test_harness_overhead": {"overhead_ratio": 0.951},
    }
    line = summary_line(("qwen3_8b", "performance", "vllm"), figures)
    assert line.startswith("qwen3_8b/performance/vllm: 19,129 output tok/s")
    assert line.index("batch 1:") < line.index("batch 32:")  # numeric, not lexical, order
    assert "0.723 of the bandwidth bound" in line
    assert "harness overhead ratio 0.951 (misses the goal >= 0.97)" in line


def test_summary_line_says_what_is_missing() -> None:
    line = summary_line(("tiny", "balanced", "hf"), {"batch_1": {"output_tokens_per_s": 800.0,
                                                                 "bandwidth_fraction": None}})
    assert "no bandwidth bound" in line and "overhead" not in line
