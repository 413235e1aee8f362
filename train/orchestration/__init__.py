"""Building a run folder from a recipe file: its split, the member networks, their average
and the answers' model (the layer above model, answers and evaluation)."""
