-- Nodes move from a WITHOUT ROWID table to an ordinary (rowid) table.
--
-- A WITHOUT ROWID table keeps each whole row inside its primary-key B-tree, in uid
-- order. Node rows are large (the state JSON, about 500 bytes) and uids are random,
-- so every insert landed on a random leaf full of big rows and split it; SQLite's
-- documentation advises WITHOUT ROWID only for rows under about 1/20 of a page. In
-- an ordinary table the rows are appended in rowid order and only the small uid
-- index takes random inserts: several times more node rows per second on the
-- benchmark machine, and faster pulls (docs/BENCHMARKS.md, "ingest").
CREATE TABLE nodes_new (
    uid      TEXT    PRIMARY KEY NOT NULL,
    list_uid TEXT    NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it a new, strictly increasing version, assigned
    -- inside the write transaction; "changes after V" is the nodes with version > V.
    version  INTEGER NOT NULL UNIQUE,
    state    TEXT    NOT NULL
);

INSERT INTO nodes_new (uid, list_uid, kind, version, state)
    SELECT uid, list_uid, kind, version, state FROM nodes ORDER BY version;

DROP TABLE nodes;

ALTER TABLE nodes_new RENAME TO nodes;

CREATE INDEX nodes_by_list_version ON nodes (list_uid, version);
