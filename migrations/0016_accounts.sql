-- Netsoc's account lifecycle (docs/accounts.md). `self_registered`: the account created
-- itself (self-registration), so the cleanup job may delete it while it stays unverified;
-- the partial index is what that job scans. The authentication audit records the email-token
-- checks (verify-email, complete-password-reset) under their own operations.
ALTER TABLE users ADD COLUMN self_registered boolean NOT NULL DEFAULT false;
CREATE INDEX users_unverified_self_registered ON users (created)
    WHERE self_registered AND NOT verified;
ALTER TABLE authentications
    DROP CONSTRAINT authentications_operation_check,
    ADD CONSTRAINT authentications_operation_check
        CHECK (operation IN ('login', 'resolve-api-key', 'http-bearer', 'authenticate-anonymous',
                             'validate-token', 'introspect', 'verify-email',
                             'complete-password-reset'));
