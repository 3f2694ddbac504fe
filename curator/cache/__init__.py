"""The Foundry model cache on disk: one compiled model directory and its manifest
(:mod:`.modeldir`), and the whole cache listed, pruned and verified (:mod:`.inventory`)."""
