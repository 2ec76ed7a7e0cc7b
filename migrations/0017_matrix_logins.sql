-- ma1sd's identity store checks Matrix logins' passwords (docs/netsoc.md); the
-- authentication audit records each under its own operation.
ALTER TABLE authentications
    DROP CONSTRAINT authentications_operation_check,
    ADD CONSTRAINT authentications_operation_check
        CHECK (operation IN ('login', 'resolve-api-key', 'http-bearer', 'authenticate-anonymous',
                             'validate-token', 'introspect', 'verify-email',
                             'complete-password-reset', 'matrix-login'));
