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
-- The rebuilt table also keys a node by (uid, list): a list's root node (uid = the
-- list's uid) may share its uid with a node another list made before the list
-- existed, so no list can be locked out of its own uid; every other uid stays
-- unique over all lists (the partial index below).
CREATE TABLE nodes_new (
    uid      TEXT    NOT NULL,
    list_uid TEXT    NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it the list's next version, assigned inside the
    -- write transaction; "changes after V" is the list's nodes with version > V.
    version  INTEGER NOT NULL,
    state    TEXT    NOT NULL,
    PRIMARY KEY (uid, list_uid)
);

INSERT INTO nodes_new (uid, list_uid, kind, version, state)
    SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY version;

DROP TABLE nodes;

ALTER TABLE nodes_new RENAME TO nodes;

CREATE UNIQUE INDEX nodes_by_list_version ON nodes (list_uid, version);

CREATE UNIQUE INDEX nodes_uid_in_one_list ON nodes (uid) WHERE uid <> list_uid;
