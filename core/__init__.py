"""The house's plumbing, knowing no domain: the worker-run lifecycle, SVG chart primitives."""
