-- validate-token (protocol) and token introspection (REST) check a token on a service's
-- behalf; the authentication audit records each refusal under its own operation.
ALTER TABLE authentications
    DROP CONSTRAINT authentications_operation_check,
    ADD CONSTRAINT authentications_operation_check
        CHECK (operation IN ('login', 'resolve-api-key', 'http-bearer', 'authenticate-anonymous',
                             'validate-token', 'introspect'));
