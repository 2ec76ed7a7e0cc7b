-- Private signing keys sealed at rest (issue 15). `kek` is the fingerprint of the
-- key-encryption key that sealed `private_key` (XChaCha20-Poly1305, the kid as associated
-- data); NULL: stored unsealed (no KEK configured; `iamd signing-keys rewrap` seals it).
ALTER TABLE signing_keys ADD COLUMN kek text;

-- A retired key only verifies: it keeps its public half, the private one is erased when the
-- key is retired. Keys retired before this migration lose theirs now.
ALTER TABLE signing_keys ALTER COLUMN private_key DROP NOT NULL;
UPDATE signing_keys SET private_key = NULL WHERE retired IS NOT NULL OR valid_until IS NOT NULL;
ALTER TABLE signing_keys ADD CONSTRAINT signing_keys_active_has_private_key
    CHECK (valid_until IS NOT NULL OR private_key IS NOT NULL);
