-- TrustGraph's gateway asks iamd for anonymous access (authenticate-anonymous) when a
-- request carries no bearer; iamd always refuses, and the authentication audit records each
-- refusal: credential `anonymous`, operation `authenticate-anonymous`.
ALTER TABLE authentications
    DROP CONSTRAINT authentications_credential_check,
    DROP CONSTRAINT authentications_operation_check,
    ADD CONSTRAINT authentications_credential_check
        CHECK (credential IN ('password', 'api-key', 'jwt', 'anonymous')),
    ADD CONSTRAINT authentications_operation_check
        CHECK (operation IN ('login', 'resolve-api-key', 'http-bearer', 'authenticate-anonymous'));
