"""`python -m moodsic_engine.cli` and the `moodsic` console script: the commands live in
`moodsic_engine._cli`, one module per command group."""

from __future__ import annotations

from ._cli import app, main

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()
