"""A loopback HTTP server that answers foundry-local-sdk 2.2.1's catalog request.

The SDK (configured with ``Configuration(catalog_urls=[(URL, None)])``, which curator does when
``$CURATOR_CATALOG_URL`` is set) sends one ``POST <URL>`` whose JSON body holds ``filters``
(``{"field", "operator", "values"}``) and ``pageSize``, and expects ``{"value": [records]}``. A record
needs ``assetId``, ``properties.name``, ``properties.version``,
``properties.variantInfo.variantMetadata.{device,executionProvider}`` and
``annotations.systemCatalogData.{publisher,inferenceTasks}`` or the SDK drops it silently.

Like the real service this server applies the ``eq`` filters on the device and execution provider
(the SDK asks only for what this machine can run), so a GPU record is not offered to a CPU machine.
Every request is kept in ``requests`` (path and parsed body) for the tests to check.

``place_cached`` puts a model where a finished download would be: ``<cache>/<publisher>/
<name>-<version>/`` with ``inference_model.json`` naming ``<name>:<version>``. Downloads themselves go
through the model-registry service and blob storage over https, which no loopback server can stand
in for (see README "What the loopback catalog does not cover").
"""

from __future__ import annotations

import json
import shutil
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CATALOG_PATH = "/asset-gallery/v1.0/models"
FILTERED_FIELDS = (
    "properties/variantInfo/variantMetadata/device",
    "properties/variantInfo/variantMetadata/executionProvider",
)


def catalog_record(
    name: str,
    alias: str,
    *,
    version: int = 1,
    device: str = "cpu",
    execution_provider: str = "CPUExecutionProvider",
    publisher: str = "Microsoft",
    license: str = "mit",
    task: str = "chat-completion",
    size_bytes: int = 300 * 2**20,
    display_name: str | None = None,
    registry: str = "azureml",
) -> dict[str, Any]:
    """One catalog record in the shape the SDK reads. A record the tests try to download names a
    registry that does not exist, so that a machine with network gets a quick "not found" from the
    real download service instead of a real model."""
    return {
        "assetId": f"azureml://registries/{registry}/models/{name}/versions/{version}",
        "version": str(version),
        "annotations": {
            "tags": {"alias": alias, "license": license, "task": task},
            "systemCatalogData": {
                "publisher": publisher,
                "license": license,
                "displayName": display_name or name,
                "inferenceTasks": [task],
            },
        },
        "properties": {
            "name": name,
            "version": version,
            "variantInfo": {
                "variantMetadata": {
                    "device": device,
                    "executionProvider": execution_provider,
                    "fileSizeBytes": size_bytes,
                }
            },
        },
    }


def _field(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


@dataclass
class FakeCatalog:
    """``with FakeCatalog(records) as catalog:`` serves ``catalog.url`` until the block ends."""

    records: list[dict[str, Any]] = field(default_factory=list)
    requests: list[tuple[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None, "start the catalog first"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}{CATALOG_PATH}"

    def answer(self, body: Any) -> list[dict[str, Any]]:
        filters = body.get("filters", []) if isinstance(body, dict) else []
        chosen = []
        for record in self.records:
            keep = True
            for item in filters:
                if item.get("field") in FILTERED_FIELDS and item.get("operator") == "eq":
                    value = str(_field(record, item["field"]) or "").lower()
                    keep = keep and value in {str(v).lower() for v in item.get("values", [])}
            if keep:
                chosen.append(record)
        return chosen

    def start(self) -> FakeCatalog:
        catalog = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    body = None
                catalog.requests.append((self.path, body))
                if self.path.split("?")[0] != CATALOG_PATH:
                    self._send(404, b"{}")
                    return
                self._send(200, json.dumps({"value": catalog.answer(body)}).encode())

            def _send(self, status: int, payload: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeCatalog:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()


def closed_port_url() -> str:
    """A catalog URL on a loopback port nobody listens on: the catalog is unreachable."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{CATALOG_PATH}"


def place_cached(
    cache_dir: Path, compiled: Path, name: str, version: int, publisher: str = "Microsoft"
) -> Path:
    """Copy a compiled model to where the SDK puts a finished download of ``name:version``."""
    target = cache_dir / publisher / f"{name}-{version}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(compiled, target, ignore=shutil.ignore_patterns("curator-manifest.json"))
    inference = json.loads((target / "inference_model.json").read_text(encoding="utf-8"))
    inference["Name"] = f"{name}:{version}"
    (target / "inference_model.json").write_text(json.dumps(inference, indent=2), encoding="utf-8")
    return target
