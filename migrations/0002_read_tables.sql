-- Read tables: written only by the projections in src/projections, inside the append
-- transaction; rebuildable from the log.
CREATE TABLE workspaces (
    id      text PRIMARY KEY,
    name    text        NOT NULL,
    enabled boolean     NOT NULL,
    created timestamptz NOT NULL
);

CREATE TABLE users (
    id                   text PRIMARY KEY,
    workspace            text        NOT NULL,
    username             text        NOT NULL,
    name                 text        NOT NULL,
    email                text        NOT NULL,
    roles                text[]      NOT NULL,
    enabled              boolean     NOT NULL,
    must_change_password boolean     NOT NULL,
    -- argon2id encoding; NULL when the user has no usable password.
    password_hash        text,
    -- The account version carried in JWTs; bumped to log out everywhere.
    account_version      bigint      NOT NULL,
    created              timestamptz NOT NULL
);
CREATE UNIQUE INDEX users_username_lower ON users (lower(username));
CREATE INDEX users_workspace ON users (workspace, created, id);

CREATE TABLE api_keys (
    -- SHA-256 of the plaintext: resolve-api-key is one primary-key lookup.
    key_hash  bytea PRIMARY KEY,
    id        text UNIQUE NOT NULL,
    user_id   text        NOT NULL,
    workspace text        NOT NULL,
    name      text        NOT NULL,
    prefix    text        NOT NULL,
    expires   timestamptz,
    created   timestamptz NOT NULL,
    -- Coalesced usage stamp (not an event): at most one write per key per interval.
    last_used timestamptz
);
CREATE INDEX api_keys_user ON api_keys (user_id, created);
