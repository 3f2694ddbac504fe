"""The curator command line: Click glue only. Each module is one command group."""
