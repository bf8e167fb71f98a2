"""Demo data for `make run`: a fictional bank's support assistant (see `generate.py`)."""
