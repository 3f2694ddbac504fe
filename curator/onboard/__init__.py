"""``curator onboard``: the whole job for one model (pipeline) and its pull-request summary."""
