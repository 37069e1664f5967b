from __future__ import annotations

import sys
from pathlib import Path

# The fake upstream servers live beside the LLM backend tests.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "llm"))
