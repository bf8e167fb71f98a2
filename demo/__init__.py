"""The demo project `make run` opens on: Harbor Assist, a fictional bank's support assistant.

The generator (`generate.py` and the scenario modules beside it) is plain Python with no Django import; it writes
the committed JSONL files next to it. `load_demo` (`services.py`) builds every stage of the method from them, only
through the other apps' own services. This app is the last stage: it may import every other app, none imports it.
"""
