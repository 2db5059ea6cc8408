"""Prometheus metrics of the service (``GET /metrics``, text format), in a registry of their own per app."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

__all__ = ["ServeMetrics", "CONTENT_TYPE_LATEST"]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class ServeMetrics:
    """Requests by route and status code, latency histograms, queue depths, model load times, catalogue size."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("recllm_requests", "HTTP requests by route template and status code",
                                ("route", "method", "code"), registry=r)
        self.latency = Histogram("recllm_request_seconds", "Request latency by route template",
                                 ("route", "method"), buckets=_LATENCY_BUCKETS, registry=r)
        self.first_appearance = Histogram(
            "recllm_item_first_appearance_seconds",
            "From POST /items to the item's first appearance in a /recommend or /similar answer",
            buckets=_LATENCY_BUCKETS + (300.0, 3600.0), registry=r)
        self.item_indexed = Histogram("recllm_item_indexed_seconds",
                                      "POST /items: encoding + item tower + index insert (retrievable on return)",
                                      buckets=_LATENCY_BUCKETS, registry=r)
        self.summary_queue = Gauge("recllm_summary_queue_depth", "Users waiting for a summary update", registry=r)
        self.summary_updates = Counter("recllm_summary_updates", "Recurrent summary updates done", registry=r)
        self.summary_errors = Counter("recllm_summary_errors", "Summary updates that failed", registry=r)
        self.model_load = Gauge("recllm_model_load_seconds", "Time to load each model at start-up", ("model",),
                                registry=r)
        self.items = Gauge("recllm_catalogue_items", "Items retrievable now (catalogue + added)", registry=r)
        self.events = Counter("recllm_events_acknowledged", "Events durably stored and acknowledged", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
