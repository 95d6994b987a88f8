-- Tether's store on PostgreSQL: the same three tables as on SQLite
-- (migrations/sqlite), for several Tether nodes sharing one database.
--
-- A node row holds the node's whole merged state as JSON (the sync module's `Node`),
-- so merging stays in one place (Rust) and SQL only stores and orders.

-- A list comes into being with its first write; its UID is its capability.
-- `version` is the last version the list gave out: a writer takes the list's lock
-- (an advisory transaction lock on the list), reads it, and stores the new value
-- in the same transaction, so versions become visible in order.
CREATE TABLE lists (
    uid           TEXT   PRIMARY KEY,
    created_at_ms BIGINT NOT NULL,
    version       BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE nodes (
    uid      TEXT   PRIMARY KEY,
    list_uid TEXT   NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it the list's next version; "changes after V" is
    -- the list's nodes with version > V.
    version  BIGINT NOT NULL,
    state    TEXT   NOT NULL
);

CREATE UNIQUE INDEX nodes_by_list_version ON nodes (list_uid, version);

-- The highest sequence number applied per (list, client): a resent op is
-- acknowledged again, never applied twice, whichever node it reaches.
CREATE TABLE client_seqs (
    list_uid TEXT   NOT NULL REFERENCES lists (uid),
    client   TEXT   NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (list_uid, client)
);
