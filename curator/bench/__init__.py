"""``curator bench``: measure latency, time to first token, tokens/s and memory of compiled models.

Small modules with one job each: ``stats`` (aggregates), ``measure`` (one streamed request),
``memory`` (peak RSS sampling), ``backends`` (in-process Foundry Local or an OpenAI-compatible
endpoint), ``quality`` (aspect coverage and manual scores), ``runner``
(the run), ``machine`` (fingerprint), ``record`` (registry summaries) and ``compare`` (two reports).
Nothing here imports click or prints; heavy libraries are imported inside the functions using them.
"""
