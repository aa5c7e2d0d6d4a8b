"""After mix, explain and score: an HTTP server over a trained run (`llmrec serve`), with dynamic
batching of concurrent requests into the same decoding `llmrec recommend` uses."""

from llmrec.serve.app import build_app, serve

__all__ = ["build_app", "serve"]
