"""Stage 6: rendering result objects (rich console, JSON). Renderers never recompute a number."""
