-- Idempotency per caller and per request (issue 15). A processed-request record is keyed by
-- (caller, request_id): `gateway` for the gateway (Kafka, or HTTP with its secret),
-- `user:<id>` for a user's bearer. `digest` is a keyed digest (HMAC, `server_keys.digest`)
-- of the request's operation and fields: the same caller reusing an id for a different
-- request is refused instead of answered.
ALTER TABLE processed_requests ADD COLUMN caller text, ADD COLUMN digest text;

-- Records kept from before: their caller is read from the events they committed (a record is
-- written only with events, whose metadata names the source and the actor). Kafka was the
-- gateway; over HTTP the actor was the authenticated user (a gateway calling over HTTP with
-- its secret named its user as actor too, and its old ids are now that user's). They keep no
-- digest: they still answer a retry of the same operation, as before.
UPDATE processed_requests p
   SET caller = CASE
       WHEN e.source = 'kafka' OR coalesce(e.actor, '') = '' THEN 'gateway'
       ELSE 'user:' || e.actor
   END
  FROM (SELECT DISTINCT ON (metadata->>'request_id')
               metadata->>'request_id' AS request_id,
               metadata->>'source' AS source,
               metadata->>'actor' AS actor
          FROM events
         WHERE coalesce(metadata->>'request_id', '') <> ''
         ORDER BY metadata->>'request_id', position) e
 WHERE e.request_id = p.request_id;
UPDATE processed_requests SET caller = 'gateway' WHERE caller IS NULL;

ALTER TABLE processed_requests
    ALTER COLUMN caller SET NOT NULL,
    DROP CONSTRAINT processed_requests_pkey,
    ADD CONSTRAINT processed_requests_pkey PRIMARY KEY (caller, request_id);

-- Keys iamd holds for itself, by name (`digest`: the HMAC key of the keyed digests). `kek` is
-- the fingerprint of the key-encryption key that sealed `key`; NULL: stored unsealed.
CREATE TABLE server_keys (
    name    text        PRIMARY KEY,
    key     bytea       NOT NULL,
    kek     text,
    created timestamptz NOT NULL DEFAULT now()
);
