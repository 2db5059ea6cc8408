"""recllm.serve: the real-time recommendation service (``recllm serve``; needs ``pip install recllm[serve]``).

``create_app(state, store, token, ...)`` builds the FastAPI app over a :class:`ServeState` (a LEARN artifact that
grows with new items and events) and an :class:`EventStore` (SQLite by default); ``recllm.serve.cli`` wires them from
run folders. FastAPI is imported only by ``recllm.serve.app``, so the rest of recllm works without it.
"""
