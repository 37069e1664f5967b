"""The PostgreSQL harness itself: a real cluster that survives a restart."""

from __future__ import annotations

from pg_harness import PgCluster


def test_cluster_serves_and_restarts_on_the_same_port(pg: PgCluster) -> None:
    dsn = pg.new_database()
    dbname = dsn.rsplit("/", 1)[1]
    pg.sql("CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)", dbname)
    port = pg.port
    pg.restart("immediate")
    assert pg.port == port
    assert pg.sql("SELECT v FROM kept", dbname) == "7"
    assert pg.sql("SHOW synchronous_commit") == "on"
