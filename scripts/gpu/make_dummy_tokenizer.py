"""Extract the real Qwen2.5 tokenizer from the qwen2.5_coder_1.5b GGUF for dummy-weight runs.

    python scripts/gpu/make_dummy_tokenizer.py --gguf PATH/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf \
        [--out DIR]   # default: qwenharness.dummy_tokenizer.default_dir()

The folder it writes (tokenizer.json, tokenizer_config.json, chat_template.jinja; about 11 MB) is what
`qwenharness.tiny.dummy_model_dir` copies into dummy folders. For the GPU machine, write it into a
git-ignored folder of the project (e.g. `--out .data/tokenizer-qwen2.5`), carry that folder, and set
QWENHARNESS_DUMMY_TOKENIZER to it there.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from qwenharness import dummy_tokenizer as dt  # noqa: E402
from qwenharness.errors import HarnessError  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gguf", required=True, help="a Qwen2.5 GGUF file (qwen2.5_coder_1.5b)")
    ap.add_argument("--out", default=None, help=f"output folder (default {dt.default_dir()})")
    args = ap.parse_args()
    try:
        out = dt.extract_from_gguf(args.gguf, args.out)
    except HarnessError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"{out} ({dt.fingerprint(out)}): " + ", ".join(p.name for p in sorted(out.iterdir())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
