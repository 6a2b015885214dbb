"""What the task table says about a window, as reports: the time windows and their buckets
(``window``), the figures read from the indexes (``queries``), the runtimes (``runtimes``),
the overview page's charts (``charts``), the Prometheus collector (``metrics``) and
``manage.py celery_sa_stats``' report (``stats``)."""
