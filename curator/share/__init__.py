"""Sharing compiled models: publish to a Hugging Face model repository, pull onto a machine."""
