-- The `/v1` surface's ES256 (P-256) keys beside the Ed25519 ones (issue 18): each algorithm
-- has its own active key, rotated and published in JWKS the same way. `public_key` holds the
-- raw Ed25519 key or the P-256 uncompressed point.
ALTER TABLE signing_keys ADD COLUMN algorithm text NOT NULL DEFAULT 'EdDSA'
    CHECK (algorithm IN ('EdDSA', 'ES256'));
