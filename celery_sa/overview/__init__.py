"""The overview of the task table: its time windows, the figures read from the indexes,
the charts, and the Prometheus collector (the admin page and the metrics view use them)."""
