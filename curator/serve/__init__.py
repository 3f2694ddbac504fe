"""``curator serve``: an OpenAI-compatible HTTP server over the models registered with Foundry
Local. The app factory is :func:`curator.serve.app.create_app`; :func:`curator.serve.app.serve`
runs it with uvicorn. Importing this package imports no web framework."""
