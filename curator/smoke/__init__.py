"""``curator smoke``: run a fixed prompt set through a registered model (:mod:`.run`) and refuse
degenerate answers (:mod:`.degeneracy`)."""
