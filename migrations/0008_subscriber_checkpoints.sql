-- Where each subscriber of the event log stands (src/adapters/trustgraph): the cursor of the
-- last event it has fully handled, in the tail's commit order (transaction id, position). A
-- restart resumes after it, so nothing is skipped and nothing handled is sent again.
CREATE TABLE subscriber_checkpoints (
    name           text        PRIMARY KEY,
    transaction_id xid8        NOT NULL,
    position       bigint      NOT NULL,
    updated_at     timestamptz NOT NULL
);
