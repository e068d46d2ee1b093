"""The long-running reconciler: the loop and its triggers, the HTTP server, webhooks, metrics, status."""
