#!/usr/bin/env python3
"""Render an HTML report in headless Chromium and save a PNG screenshot.

    python scripts/screenshot_report.py reports/full-suite.html reports/full-suite.png [--width 1400 --height 4000]

Uses Debian's `chromium` (apt-get install -y chromium), or the binary named by $CHROMIUM. A fresh
profile directory is used and removed; networking features Chromium would start on its own are off.
Exit status: 0 with the PNG written, 2 when Chromium or the report is missing, 1 when Chromium fails.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

DEFAULT_CHROMIUM = "/usr/bin/chromium"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars")


def chromium_path() -> str | None:
    candidate = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM
    if Path(candidate).is_file() and os.access(candidate, os.X_OK):
        return candidate
    return shutil.which("chromium")


def screenshot(html: Path, png: Path, width: int = 1400, height: int = 4000, timeout_s: float = 120.0) -> Path:
    """Write a screenshot of `html` to `png`. Raises FileNotFoundError (no Chromium, no report) or
    RuntimeError (Chromium failed or wrote nothing)."""
    chromium = chromium_path()
    if chromium is None:
        raise FileNotFoundError(f"no Chromium at {DEFAULT_CHROMIUM} or on PATH (install it: apt-get install -y chromium, "
                                "or set CHROMIUM=/path/to/chromium)")
    html = Path(html).resolve()
    if not html.is_file():
        raise FileNotFoundError(f"no HTML report at {html} (run pytest with --html, or `qwenharness report --html`)")
    png = Path(png).resolve()
    png.parent.mkdir(parents=True, exist_ok=True)
    if png.exists():
        png.unlink()
    with tempfile.TemporaryDirectory(prefix="qh-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={png}",
               f"--window-size={width},{height}", html.as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
    if proc.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
        raise RuntimeError(f"chromium exited with {proc.returncode} and wrote no screenshot: {proc.stderr.strip()[-800:]}")
    return png


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("html", type=Path, help="the HTML report")
    p.add_argument("png", type=Path, help="where the screenshot goes")
    p.add_argument("--width", type=int, default=1400)
    p.add_argument("--height", type=int, default=4000)
    args = p.parse_args(argv)
    try:
        out = screenshot(args.html, args.png, args.width, args.height)
    except FileNotFoundError as e:
        print(f"screenshot_report: {e}", file=sys.stderr)
        return 2
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        print(f"screenshot_report: {e}", file=sys.stderr)
        return 1
    print(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
