"""Write celery-<version>.mssql.sql: the DDL Celery's result models produce on SQL Server.

No SQL Server runs on this project's machines, so these files are compiled, not dumped:
``ResultModelBase.metadata.create_all()`` runs against a mock engine of SQLAlchemy's
``mssql+pyodbc`` dialect, set up as ``MSDialect.initialize()`` leaves it on connecting to
SQL Server 2022 (``server_version_info`` (16, 0, 1000, 6); the dialect's own
``_setup_version_attributes()`` then turns ``deprecate_large_types`` on; the probes for
NVARCHAR(max) and, on SQLAlchemy 2, extended properties succeed), and every DDL element it
emits is written as ``str(ddl.compile(dialect=dialect)).strip()`` followed by ``\\n;\\n``.

Run it with the Python of a throwaway venv holding the SQLAlchemy of that Celery's era (the
file is named after the Celery version; nothing else of this repository is imported)::

    # Celery 5.x, as installed: 5.2.7 with SQLAlchemy 1.4.54, 5.5.3+ with 2.1.9
    python3.11 -m venv /tmp/mssql-5.6.3
    /tmp/mssql-5.6.3/bin/pip install celery==5.6.3 SQLAlchemy==2.1.9
    /tmp/mssql-5.6.3/bin/python tests/tables/legacy/make_mssql.py

    # Celery 4.x does not import on Python 3.11: its models.py and session.py are executed
    # from the wheel with SQLAlchemy 1.3.24 and stand-ins for celery.states, celery.five
    # and kombu.utils.compat
    python3.11 -m venv /tmp/mssql-sa13
    /tmp/mssql-sa13/bin/pip install SQLAlchemy==1.3.24
    /tmp/mssql-sa13/bin/pip download --no-deps -d /tmp/celery4 celery==4.4.7
    /tmp/mssql-sa13/bin/python tests/tables/legacy/make_mssql.py \\
        --celery-wheel /tmp/celery4/celery-4.4.7-py2.py3-none-any.whl

``--output FILE`` writes elsewhere, ``-`` to standard output.
"""

from __future__ import annotations

import argparse
import sys
import types
import zipfile
from pathlib import Path
from typing import Any

import sqlalchemy

HERE = Path(__file__).resolve().parent
SERVER_VERSION_INFO = (16, 0, 1000, 6)  # SQL Server 2022, as pyodbc's dialect parses it
SQLALCHEMY_OF_ERA = {
    "4.2.2": "1.3.24",
    "4.4.7": "1.3.24",
    "5.2.7": "1.4.54",
    "5.5.3": "2.1.9",
    "5.6.3": "2.1.9",
    "5.7.0": "2.1.9",
}


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attrs)
    sys.modules[name] = module
    return module


def load_from_wheel(wheel: Path) -> tuple[str, sqlalchemy.MetaData]:
    """Execute a Celery 4 wheel's ``celery/backends/database/{session,models}.py``."""
    version = wheel.name.split("-")[1]
    with zipfile.ZipFile(wheel) as archive:
        source = {
            name: archive.read(f"celery/backends/database/{name}.py").decode()
            for name in ("session", "models")
        }
    # Stand-ins for the little the two files import from Celery and Kombu.
    _module("celery", __path__=[])
    _module("celery.states", PENDING="PENDING")
    _module("celery.five", python_2_unicode_compatible=lambda cls: cls)
    _module("celery.backends", __path__=[])
    _module("celery.backends.database", __path__=[])
    if "kombu" not in sys.modules:
        try:
            import kombu.utils.compat  # noqa: F401
        except ImportError:
            _module("kombu", __path__=[])
            _module("kombu.utils", __path__=[])
            _module("kombu.utils.compat", register_after_fork=None)
    for name in ("session", "models"):
        module = _module(f"celery.backends.database.{name}", __package__="celery.backends.database")
        filename = f"{wheel.name}/celery/backends/database/{name}.py"
        exec(compile(source[name], filename, "exec"), module.__dict__)
    return version, sys.modules["celery.backends.database.session"].ResultModelBase.metadata


def load_installed() -> tuple[str, sqlalchemy.MetaData]:
    import celery
    import celery.backends.database.models
    from celery.backends.database.session import ResultModelBase

    return celery.__version__, ResultModelBase.metadata


def connected_dialect(dialect: Any) -> None:
    """Set what ``MSDialect.initialize()`` sets on connecting to SQL Server 2012 or later."""
    dialect.server_version_info = SERVER_VERSION_INFO
    dialect.default_schema_name = "dbo"
    dialect._setup_version_attributes()  # deprecate_large_types, multi-values insert, ...
    dialect._supports_nvarchar_max = True  # SELECT CAST('...' AS NVARCHAR(max)) worked
    if hasattr(dialect, "_setup_supports_comments"):  # SQLAlchemy 2: fn_listextendedproperty
        if dialect._user_defined_supports_comments is None:
            dialect.supports_comments = True
    assert dialect.deprecate_large_types is True, dialect.deprecate_large_types


def compile_ddl(metadata: sqlalchemy.MetaData) -> str:
    statements: list[str] = []
    engine: Any = None

    def collect(ddl: Any, *multiparams: Any, **params: Any) -> None:
        statements.append(str(ddl.compile(dialect=engine.dialect)).strip())

    if hasattr(sqlalchemy, "create_mock_engine"):  # SQLAlchemy 1.4+
        engine = sqlalchemy.create_mock_engine("mssql+pyodbc://", collect)
    else:  # SQLAlchemy 1.3
        engine = sqlalchemy.create_engine("mssql+pyodbc://", strategy="mock", executor=collect)
    connected_dialect(engine.dialect)
    metadata.create_all(engine, checkfirst=False)
    return "".join(f"{statement}\n;\n" for statement in statements)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--celery-wheel", type=Path, help="a Celery 4 wheel to take models from")
    parser.add_argument("--output", help="the file to write (default: beside this script)")
    args = parser.parse_args()
    if args.celery_wheel:
        version, metadata = load_from_wheel(args.celery_wheel)
    else:
        version, metadata = load_installed()
    era = SQLALCHEMY_OF_ERA.get(version)
    if era != sqlalchemy.__version__:
        print(
            f"warning: Celery {version} with SQLAlchemy {sqlalchemy.__version__}; "
            f"the fixtures use {era}",
            file=sys.stderr,
        )
    sql = compile_ddl(metadata)
    if args.output == "-":
        sys.stdout.write(sql)
        return
    output = Path(args.output) if args.output else HERE / f"celery-{version}.mssql.sql"
    output.write_text(sql)
    print(f"{output}: Celery {version}, SQLAlchemy {sqlalchemy.__version__}", file=sys.stderr)


if __name__ == "__main__":
    main()
