"""MySQL and MariaDB on the Django side: mysqlclient or PyMySQL for Celery, mysqlclient for
Django."""

from __future__ import annotations

from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from celery_sa.db.adapters.base import (
    PLAIN_DISTINCT,
    Driver,
    Operations,
    Replication,
    UrlMapping,
)

MYSQLCLIENT = Driver("MySQLdb", "mysqlclient")
PYMYSQL = Driver("pymysql", "PyMySQL")
SSL_KEYS = ("ssl_ca", "ssl_cert", "ssl_key", "ssl_capath", "ssl_cipher")
INT_OPTIONS = ("connect_timeout", "read_timeout", "write_timeout", "local_infile")


class MySQLUrlMapping(UrlMapping):
    vendor_name = "mysql"
    django_engine = "django.db.backends.mysql"
    django_drivers = (MYSQLCLIENT,)
    celery_drivers = {
        ("mysql", "mysqldb"): MYSQLCLIENT,
        ("mysql", "pymysql"): PYMYSQL,
        ("mariadb", "mysqldb"): MYSQLCLIENT,
        ("mariadb", "pymysql"): PYMYSQL,
        ("mariadb", "mariadbconnector"): Driver("mariadb", "mariadb"),
    }
    default_port = "3306"

    def to_django(self, config: dict[str, Any], query: dict[str, str]) -> None:
        if "unix_socket" in query:
            config["HOST"] = query.pop("unix_socket")
        ssl = {key[len("ssl_") :]: query.pop(key) for key in SSL_KEYS if key in query}
        if ssl:
            config["OPTIONS"]["ssl"] = ssl
        for key, value in query.items():
            config["OPTIONS"][key] = int(value) if key in INT_OPTIONS else value

    def from_django(
        self, options: dict[str, Any], host: str | None
    ) -> tuple[dict[str, Any], str | None]:
        query = {f"ssl_{key}": value for key, value in (options.pop("ssl", None) or {}).items()}
        if host and host.startswith("/"):
            query["unix_socket"], host = host, None
        return {**query, **options}, host


class MySQLOperations(Operations):
    distinct_sql = PLAIN_DISTINCT

    def replication(self, connection: BaseDatabaseWrapper) -> Replication | None:
        # MariaDB's and MySQL's name before 8.0.22 (MariaDB keeps it beside SHOW REPLICA).
        with connection.cursor() as cursor:
            cursor.execute("SHOW SLAVE STATUS")
            row = cursor.fetchone()
            names = [column[0] for column in cursor.description or ()]
        if row is None:
            return None
        status = dict(zip(names, row, strict=False))
        running = (
            status.get("Slave_IO_Running") == "Yes" and status.get("Slave_SQL_Running") == "Yes"
        )
        behind = status.get("Seconds_Behind_Master")
        return Replication(running, None if behind is None else float(behind))
