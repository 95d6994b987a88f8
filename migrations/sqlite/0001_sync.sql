-- Tether's store: the state of every node of every list, and what each client has
-- pushed. A node row holds the node's whole merged state as JSON (the sync module's
-- `Node`), so merging stays in one place (Rust) and SQL only stores and orders.

-- A list comes into being with its first write; its UID is its capability.
CREATE TABLE lists (
    uid           TEXT    PRIMARY KEY NOT NULL,
    created_at_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE nodes (
    uid      TEXT    PRIMARY KEY NOT NULL,
    list_uid TEXT    NOT NULL REFERENCES lists (uid),
    kind     TEXT,
    -- Every write of a node gives it a new, strictly increasing version, assigned
    -- inside the write transaction; "changes after V" is the nodes with version > V.
    version  INTEGER NOT NULL UNIQUE,
    state    TEXT    NOT NULL
) WITHOUT ROWID;

CREATE INDEX nodes_by_list_version ON nodes (list_uid, version);

-- The highest sequence number applied per (list, client): a resent op is
-- acknowledged again, never applied twice.
CREATE TABLE client_seqs (
    list_uid TEXT    NOT NULL REFERENCES lists (uid),
    client   TEXT    NOT NULL,
    last_seq INTEGER NOT NULL,
    PRIMARY KEY (list_uid, client)
) WITHOUT ROWID;
