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

-- A node is keyed by (uid, list): a list's root node (uid = the list's uid) may share
-- its uid with a node another list made before the list existed, so no list can be
-- locked out of its own uid; every other uid is unique over all lists (the partial
-- index below).
CREATE TABLE nodes (
    uid      TEXT   NOT NULL,
    list_uid TEXT   NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it the list's next version; "changes after V" is
    -- the list's nodes with version > V.
    version  BIGINT NOT NULL,
    state    TEXT   NOT NULL,
    PRIMARY KEY (uid, list_uid)
);

CREATE UNIQUE INDEX nodes_uid_in_one_list ON nodes (uid) WHERE uid <> list_uid;

CREATE UNIQUE INDEX nodes_by_list_version ON nodes (list_uid, version);

-- The highest sequence number applied per (list, client): a resent op is
-- acknowledged again, never applied twice, whichever node it reaches.
CREATE TABLE client_seqs (
    list_uid TEXT   NOT NULL REFERENCES lists (uid),
    client   TEXT   NOT NULL,
    last_seq BIGINT NOT NULL,
    PRIMARY KEY (list_uid, client)
);
