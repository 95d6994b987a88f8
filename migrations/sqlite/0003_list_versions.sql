-- Versions count per list instead of over the whole server.
--
-- Each list keeps the last version it gave out (`lists.version`), and a node's
-- version is unique within its list. A list continues from the highest version its
-- nodes already have, so every cursor a client holds stays valid. With one counter
-- per list, lists commit side by side on PostgreSQL (each holds only its own lock),
-- and a version no longer tells one list's clients how much the others store.
ALTER TABLE lists ADD COLUMN version INTEGER NOT NULL DEFAULT 0;

UPDATE lists SET version = COALESCE(
    (SELECT MAX(version) FROM nodes WHERE nodes.list_uid = lists.uid), 0);

-- SQLite cannot drop a column's UNIQUE constraint: the table is rebuilt without it.
CREATE TABLE nodes_new (
    uid      TEXT    PRIMARY KEY NOT NULL,
    list_uid TEXT    NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it the list's next version, assigned inside the
    -- write transaction; "changes after V" is the list's nodes with version > V.
    version  INTEGER NOT NULL,
    state    TEXT    NOT NULL
);

INSERT INTO nodes_new (uid, list_uid, kind, version, state)
    SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY version;

DROP TABLE nodes;

ALTER TABLE nodes_new RENAME TO nodes;

CREATE UNIQUE INDEX nodes_by_list_version ON nodes (list_uid, version);
