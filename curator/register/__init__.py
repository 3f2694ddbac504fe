"""``curator register`` and ``curator pull``: compiled and catalog models into Foundry Local and the registry."""
